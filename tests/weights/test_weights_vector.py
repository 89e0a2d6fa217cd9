"""Flat weight vectors and batched population evaluation (evofusion.weights.vector)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evofusion.data import load_dataset
from evofusion.errors import ConfigError
from evofusion.genome import StageGene, StudentGenome, build
from evofusion.weights.vector import (
    PopulationEvaluator,
    load_vector,
    num_params,
    param_names,
    to_vector,
    vectors_from_state_dicts,
)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    splits = load_dataset("digits", limit=300)
    return splits.val.tensors()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    genome = StudentGenome(stages=(StageGene(width=8, skip=True), StageGene(width=8, pool="avg")),
                           in_channels=1, input_size=8, num_classes=10)
    model = build(genome)
    for m in model.modules():  # non-trivial BatchNorm statistics, so that buffers matter
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Dropout(0.5), nn.Linear(32, 10))


def _population(model: nn.Module, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    v = to_vector(model)
    return v + 0.3 * torch.randn(n, v.numel(), generator=g)


def test_round_trip_and_buffers_untouched() -> None:
    model = _cnn()
    names = param_names(model)
    assert names == [n for n, _ in model.named_parameters()]
    assert not any("running" in n for n in names)
    v = to_vector(model)
    assert v.shape == (num_params(model),)
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    w = torch.randn_like(v)
    load_vector(model, w)
    torch.testing.assert_close(to_vector(model), w, rtol=0, atol=0)
    for k, b in model.named_buffers():
        torch.testing.assert_close(b, buffers[k], rtol=0, atol=0)
    with pytest.raises(ValueError):
        load_vector(model, w[:-1])


def test_vectors_from_state_dicts() -> None:
    model = _cnn()
    states = [model.state_dict()]
    other = _cnn()
    load_vector(other, torch.randn(num_params(other)))
    states.append(other.state_dict())
    pop = vectors_from_state_dicts(model, states)
    assert pop.shape == (2, num_params(model))
    torch.testing.assert_close(pop[0], to_vector(model))
    torch.testing.assert_close(pop[1], to_vector(other))
    bad = dict(states[0])
    bad.pop(param_names(model)[0])
    with pytest.raises(ValueError, match=param_names(model)[0]):
        vectors_from_state_dicts(model, [bad])


@pytest.mark.parametrize("make", [_cnn, _mlp], ids=["cnn_bn", "mlp"])
@pytest.mark.parametrize("metric", ["loss", "accuracy"])
def test_vmap_matches_loop(digits: tuple[torch.Tensor, torch.Tensor], make, metric: str) -> None:
    x, y = digits
    model = make()
    model.train()  # the evaluator must switch to eval mode itself and restore the mode
    before = to_vector(model)
    pop = _population(model)
    ev = PopulationEvaluator(model, x, y, batch_size=16, metric=metric, vectorized=True)
    fast = ev.evaluate(pop)
    assert ev.last_mode == "vmap"
    slow = ev.evaluate_looped(pop)
    assert fast.shape == (6,)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
    assert model.training
    torch.testing.assert_close(to_vector(model), before, rtol=0, atol=0)  # looped restores the weights
    # ground truth for one member, computed by hand in eval mode
    load_vector(model, pop[2])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    expected = nn.functional.cross_entropy(logits, y) if metric == "loss" \
        else (logits.argmax(1) == y).float().mean()
    torch.testing.assert_close(fast[2], expected, rtol=0, atol=1e-5)


def test_fitness_slice_and_chunks(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits
    model = _mlp()
    pop = _population(model, n=5)
    idx = torch.tensor([0, 3, 4, 9, 10])
    sliced = PopulationEvaluator(model, x, y, chunk_size=2).evaluate(pop, idx)
    direct = PopulationEvaluator(model, x[idx], y[idx]).evaluate(pop)
    torch.testing.assert_close(sliced, direct, rtol=0, atol=1e-6)


class _NoBatchingRule(nn.Module):
    """Data-dependent control flow (``.item()``) cannot be vmapped."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        return out * 2 if out.sum().item() > 0 else out


def test_auto_falls_back_to_loop(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits
    model = _NoBatchingRule()
    pop = _population(model, n=3)
    with pytest.raises(Exception):  # noqa: B017 - whatever vmap raises propagates with vectorized=True
        PopulationEvaluator(model, x, y, vectorized=True).evaluate(pop)
    ev = PopulationEvaluator(model, x, y, vectorized="auto")
    out = ev.evaluate(pop)
    assert ev.last_mode == "loop"
    torch.testing.assert_close(out, PopulationEvaluator(model, x, y, vectorized=False).evaluate(pop))


def test_bad_evaluator_params(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits
    with pytest.raises(ConfigError, match="metric"):
        PopulationEvaluator(_mlp(), x, y, metric="f1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size"):
        PopulationEvaluator(_mlp(), x, y, batch_size=0)
