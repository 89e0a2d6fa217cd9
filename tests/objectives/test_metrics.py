from __future__ import annotations

import pytest
import torch
from torch import nn

from evofusion.errors import ConfigError
from evofusion.objectives import count_params, flops_and_macs, measure_latency_ms, size_bytes


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))


def test_count_params_exact() -> None:
    assert count_params(mlp()) == 10 * 20 + 20 + 20 * 5 + 5
    m = mlp()
    m[0].weight.requires_grad_(False)
    assert count_params(m, trainable_only=True) == 20 + 20 * 5 + 5


def test_size_bytes_counts_parameters_and_buffers() -> None:
    assert size_bytes(mlp()) == 325 * 4
    bn = nn.BatchNorm1d(5)  # 10 float params, 10 float buffers, one int64 counter
    assert size_bytes(bn) == 20 * 4 + 8
    assert size_bytes(mlp().double()) == 325 * 8


def test_flops_of_linear_and_conv() -> None:
    flops, macs = flops_and_macs(nn.Linear(10, 20), (10,))
    assert (flops, macs) == (2 * 10 * 20, 10 * 20)
    flops, macs = flops_and_macs(mlp(), (10,))
    assert flops == 2 * (10 * 20 + 20 * 5) and macs == flops // 2
    conv = nn.Conv2d(1, 4, 3, padding=1)  # 4 out channels x 9 taps x 64 positions
    assert flops_and_macs(conv, (1, 8, 8)) == (2 * 4 * 9 * 64, 4 * 9 * 64)


def test_flops_restores_training_mode() -> None:
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    m.train()
    flops_and_macs(m, (4,))
    assert m.training


@pytest.mark.parametrize("threads", [1, 2])
def test_latency_positive_and_recorded(threads: int) -> None:
    m = mlp().train()
    out = measure_latency_ms(m, (10,), threads=threads, batch=3, min_run_time=0.02)
    assert out["latency_ms"] > 0
    assert out["threads"] == threads and out["batch"] == 3 and out["device"] == "cpu"
    assert m.training
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("kwargs, field", [({"threads": 0}, "threads"), ({"batch": 0}, "batch"),
                                           ({"min_run_time": 0.0}, "min_run_time")])
def test_latency_bad_arguments(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        measure_latency_ms(mlp(), (10,), **kwargs)  # type: ignore[arg-type]
    assert e.value.field == field
