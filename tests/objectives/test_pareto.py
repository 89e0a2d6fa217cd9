from __future__ import annotations

import numpy as np
import pytest

from evofusion.objectives import crowding_distance, hypervolume, non_dominated_ranks, pareto_front

POINTS = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [5, 5], [2, 5]], dtype=float)


def test_ranks_match_hand_example() -> None:
    # (3,3) is dominated by (2,2); (2,5) by (1,4); (5,5) by (3,3), which is itself in front 1.
    np.testing.assert_array_equal(non_dominated_ranks(POINTS), [0, 0, 0, 1, 2, 1])
    np.testing.assert_array_equal(pareto_front(POINTS), [0, 1, 2])


def test_ranks_empty_and_single() -> None:
    assert non_dominated_ranks(np.zeros((0, 2))).shape == (0,)
    assert pareto_front(np.zeros((0, 2))).tolist() == []
    np.testing.assert_array_equal(non_dominated_ranks(np.array([[1.0, 2.0]])), [0])
    np.testing.assert_array_equal(pareto_front(np.array([[1.0, 2.0]])), [0])


def test_duplicates_share_a_front() -> None:
    np.testing.assert_array_equal(non_dominated_ranks(np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])),
                                  [0, 0, 1])


def test_crowding_distance_hand_example() -> None:
    F = np.array([[1, 4], [2, 3], [3, 1], [4, 0]], dtype=float)
    cd = crowding_distance(F)
    # (2,3): obj 1 neighbours 1 and 3 over span 3 -> 2/3; obj 2 neighbours 1 and 4 over span 4 -> 3/4;
    # pymoo averages over objectives.
    assert cd[0] == np.inf and cd[3] == np.inf
    assert cd[1] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert cd[2] == pytest.approx((2 / 3 + 3 / 4) / 2)


def test_crowding_distance_small_sets_are_boundary() -> None:
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)
    assert crowding_distance(np.array([[1.0, 2.0]])).tolist() == [np.inf]
    assert crowding_distance(np.array([[1.0, 2.0], [2.0, 1.0]])).tolist() == [np.inf, np.inf]


def test_hypervolume_hand_example() -> None:
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0]) == pytest.approx(3.0)
    assert hypervolume(np.array([[1.0, 1.0]]), (3.0, 3.0)) == pytest.approx(4.0)


def test_hypervolume_ignores_points_beyond_reference_and_empty() -> None:
    F = np.array([[1.0, 2.0], [2.0, 1.0], [4.0, 0.0], [3.0, 1.0], [0.5, np.nan]])
    assert hypervolume(F, [3.0, 3.0]) == pytest.approx(3.0)
    assert hypervolume(np.zeros((0, 2)), [3.0, 3.0]) == 0.0
    assert hypervolume(np.array([[5.0, 5.0]]), [3.0, 3.0]) == 0.0


def test_hypervolume_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="objectives"):
        hypervolume(np.array([[1.0, 2.0]]), [3.0, 3.0, 3.0])
