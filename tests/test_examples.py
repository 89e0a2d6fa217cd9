from __future__ import annotations

from pathlib import Path

import pytest

from evofusion import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.strategy.population >= 2
