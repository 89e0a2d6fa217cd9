"""Shared fixtures: a private cache dir, tiny configs on the bundled 8x8 digits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # tests use tiny models: a second intra-op thread only adds spin-waiting (10-25x slower measured
    # on a busy 2-core machine), so every test runs torch single-threaded and restores the setting
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # one cache per test session: teacher outputs and zoo teachers are shared between tests
    root = tmp_path_factory.getbasetemp() / "evofusion-cache"
    monkeypatch.setenv("EVOFUSION_CACHE", str(root))


def tiny_config(**over: Any) -> dict[str, Any]:
    """A search that takes a few seconds: digits, 300 training images, tiny widths."""
    cfg: dict[str, Any] = {
        "seed": 7,
        "generations": 2,
        "data": {"name": "digits", "limit": 300},
        "teacher": {"epochs": 20},
        "distill": {"steps": 12, "batch_size": 64},
        "final": {"top_k": 1, "epochs": 1},
        "space": {"max_stages": 2, "widths": [4, 8], "max_depth": 1, "head_hidden": [0]},
        "strategy": {"name": "nsga2", "population": 4},
    }
    for k, v in over.items():
        d = cfg
        *parents, last = k.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = v
    return cfg


def run_search(cfg: dict[str, Any], run_dir: Any) -> list[dict[str, Any]]:
    """Create a search in ``run_dir``, run it to its end (no fine-tune), close it; its candidate rows."""
    from evofusion import Study

    s = Study.create(cfg, run_dir, log=lambda *_: None)
    try:
        s.optimize()
        return s.store.candidates()
    finally:
        s.close()
