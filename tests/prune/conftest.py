"""Shared by the pruning tests: a tiny small_cnn teacher trained on digits, and a small GA config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from evofusion.config import validate_config
from evofusion.data import load_dataset
from evofusion.teachers import train_teacher


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("teacher") / "small_cnn"
    splits = load_dataset("digits", limit=300)
    train_teacher("small_cnn", splits, 6, d, width=0.5, seed=0)
    return d


def _cfg(**over: Any) -> Any:
    base: dict[str, Any] = {"seed": 3, "generations": 2, "data": {"name": "digits", "limit": 300},
                            "distill": {"steps": 8, "batch_size": 64, "patience": 2}, "final": {"epochs": 1},
                            "strategy": {"name": "ga", "population": 4, "params": {"elitism": 1}},
                            "objectives": {"names": ["accuracy"]}, "inherit_weights": False}
    base.update(over)
    return validate_config(base)


def quiet(*a: Any) -> None:
    pass


def rows_of(study: Any) -> list[tuple[str, Any]]:
    return [(r["genome_hash"], r["objective_values"].get("accuracy")) for r in study.store.candidates()]


def full_and_stopped(prune: dict[str, Any], tmp_path: Path) -> list[tuple[str, Any]]:
    """Candidates of an uninterrupted 2-generation run; a 1-generation run of the same config is left
    stopped in ``tmp_path / "part"`` for a test to resume."""
    from evofusion.prune import PruneStudy

    full = PruneStudy.create(_cfg(), tmp_path / "full", prune=prune, log=quiet)
    full.optimize()
    rows = rows_of(full)
    full.close()
    part = PruneStudy.create(_cfg(generations=1), tmp_path / "part", prune=prune, log=quiet)
    part.optimize()
    part.close()
    return rows
