"""evaluate_fn: a user's own training and scoring of each candidate, by import path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evofusion.errors import ConfigError
from tests.conftest import run_search, tiny_config

CALLS: list[dict] = []


def fit(model, data, *, steps, epochs, seed, device):  # noqa: ANN001, ANN201 - the user's side
    """A plain SGD loop on labels (no KD), as a user would write it."""
    CALLS.append({"steps": steps, "seed": seed, "keys": sorted(data), "device": str(device)})
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = data["train_x"], data["train_y"]
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(data["val_x"]).argmax(1) == data["val_y"]).float().mean().item()
    return {"accuracy": acc, "train_loss": float(loss.detach())}


def no_accuracy(model, data, **_):  # noqa: ANN001, ANN201
    return {"loss": 1.0}


def test_a_search_scores_candidates_with_the_users_function(tmp_path: Path) -> None:
    CALLS.clear()
    rows = run_search(tiny_config(evaluate_fn=f"{__name__}:fit", generations=1), tmp_path / "run")
    assert len(rows) == 4 and all(r["status"] == "COMPLETE" for r in rows)
    assert len(CALLS) == 4 and all(c["steps"] == 12 for c in CALLS)  # the run's per-candidate budget
    assert CALLS[0]["keys"] == ["train_t", "train_x", "train_y", "val_x", "val_y"]  # teacher logits offered
    assert len({c["seed"] for c in CALLS}) == 4  # each candidate its own seed
    for r in rows:
        assert 0 <= r["objective_values"]["accuracy"] <= 1 and "params" in r["objective_values"]
        assert r["train"]["evaluate_fn"] == f"{__name__}:fit"


def test_a_function_without_accuracy_fails_its_candidates_not_the_run(tmp_path: Path) -> None:
    rows = run_search(tiny_config(evaluate_fn=f"{__name__}:no_accuracy", generations=1), tmp_path / "run")
    assert rows and all(r["status"] == "FAILED" for r in rows)
    assert "must return 'accuracy'" in rows[0]["reason"]


@pytest.mark.parametrize("path, message", [("nomodule_xyz:fit", "evaluate_fn"), (f"{__name__}:missing", "missing"),
                                           (f"{__name__}:CALLS", "not callable")])
def test_a_bad_evaluate_fn_is_refused_before_the_run(tmp_path: Path, path: str, message: str) -> None:
    from evofusion import Study

    with pytest.raises(ConfigError, match=message):
        Study.create(tiny_config(evaluate_fn=path), tmp_path / "run", log=lambda *_: None)
    assert not (tmp_path / "run").exists()
