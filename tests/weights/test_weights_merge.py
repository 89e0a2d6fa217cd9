"""Simple merges on hand-computed examples."""

from __future__ import annotations

import pytest
import torch

from evofusion.weights.merge import average, task_arithmetic, task_vectors, ties_merge, trim_top_magnitude


def test_average_exact() -> None:
    thetas = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]), torch.tensor([5.0, 9.0])]
    torch.testing.assert_close(average(thetas), torch.tensor([3.0, 5.0]))
    torch.testing.assert_close(average(torch.stack(thetas)), torch.tensor([3.0, 5.0]))


def test_task_arithmetic_exact() -> None:
    base = torch.tensor([1.0, 1.0])
    thetas = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    taus = task_vectors(base, thetas)
    torch.testing.assert_close(taus, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    torch.testing.assert_close(task_arithmetic(base, taus, scale=0.5), torch.tensor([1.5, 2.0]))
    torch.testing.assert_close(task_arithmetic(base, list(taus)), torch.tensor([2.0, 3.0]))


def test_ties_three_tasks_by_hand() -> None:
    base = torch.ones(5)
    taus = torch.tensor([[3.0, -1.0, 0.5, 2.0, 0.0],
                         [-4.0, 2.0, 0.0, -1.0, 0.1],
                         [2.0, 3.0, 1.0, -5.0, 0.0]])
    # density 0.4 of 5 entries -> keep 2 per task vector
    trimmed = trim_top_magnitude(taus, 0.4)
    torch.testing.assert_close(trimmed, torch.tensor([[3.0, 0.0, 0.0, 2.0, 0.0],
                                                      [-4.0, 2.0, 0.0, 0.0, 0.0],
                                                      [0.0, 3.0, 0.0, -5.0, 0.0]]))
    # elected signs (sums -1, 5, 0, -3, 0): -, +, 0, -, 0; disjoint means of agreeing entries:
    # entry 0: -4; entry 1: (2 + 3) / 2; entry 3: -5; entries 2, 4: nothing left -> 0
    torch.testing.assert_close(ties_merge(base, taus, density=0.4), torch.tensor([-3.0, 3.5, 1.0, -4.0, 1.0]))
    torch.testing.assert_close(ties_merge(base, taus, density=0.4, scale=0.5),
                               torch.tensor([-1.0, 2.25, 1.0, -1.5, 1.0]))
    assert torch.equal(taus, torch.tensor([[3.0, -1.0, 0.5, 2.0, 0.0], [-4.0, 2.0, 0.0, -1.0, 0.1],
                                           [2.0, 3.0, 1.0, -5.0, 0.0]]))  # inputs untouched


def test_ties_full_density_same_signs_is_mean_and_trim_ties_by_position() -> None:
    base = torch.zeros(3)
    taus = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    torch.testing.assert_close(ties_merge(base, taus, density=1.0), torch.tensor([2.0, 3.0, 4.0]))
    torch.testing.assert_close(trim_top_magnitude(torch.tensor([1.0, -1.0, 1.0]), 1 / 3),
                               torch.tensor([[1.0, 0.0, 0.0]]))


def test_merge_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        average([torch.zeros(2), torch.zeros(3)])
    with pytest.raises(ValueError, match="base has"):
        task_arithmetic(torch.zeros(3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="density"):
        ties_merge(torch.zeros(2), torch.zeros(2, 2), density=0.0)
