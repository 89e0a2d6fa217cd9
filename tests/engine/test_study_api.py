"""The Python API a user reaches for after a search: best_candidates, trials_dataframe, export;
and a multi-fidelity genome counted once in the front, with its best-trained row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evofusion import Study
from evofusion.errors import EvoFusionError
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def mf_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    cfg = tiny_config(generations=3, final={"top_k": 0}, scheduler={"rungs": [6, 18], "eta": 2}, lamarckian=True)
    s = Study.create(cfg, tmp_path_factory.mktemp("api") / "r", log=lambda *_: None)
    s.optimize()
    yield s
    s.close()


def test_best_candidates_are_the_front_most_accurate_first(mf_study: Study) -> None:
    best = mf_study.best_candidates()
    assert [b["id"] for b in best] and sorted(b["id"] for b in best) == mf_study.pareto_ids()
    accs = [b["values"]["accuracy"] for b in best]
    assert accs == sorted(accs, reverse=True)
    assert all(Path(b["weights"]).exists() for b in best)
    assert mf_study.best_candidates(k=1) == best[:1]


def test_a_promoted_genome_counts_once_with_its_latest_row(mf_study: Study) -> None:
    rows = mf_study.store.candidates("COMPLETE")
    last = {}
    for r in rows:
        last[r["genome_hash"]] = r["id"]
    promoted = {r["genome_hash"] for r in rows if r["operator"] == "continue"}
    assert promoted
    for cid in mf_study.pareto_ids():
        r = mf_study.store.candidate(cid)
        assert last[r["genome_hash"]] == cid  # never a rung-0 row of a genome trained further later


def test_trials_dataframe_has_one_row_per_candidate(mf_study: Study) -> None:
    df = mf_study.trials_dataframe()
    rows = df.to_dict("records") if hasattr(df, "to_dict") else df
    ids = [r["id"] for r in mf_study.store.candidates()]
    assert [r["id"] for r in rows] == ids
    cont = [r for r in rows if r["operator"] == "continue"]
    assert cont and all(r["rung"] == 1 and r["steps_total"] > r["steps"] for r in cont)
    assert all("accuracy" in r and "params" in r for r in rows if r["status"] == "COMPLETE")


def test_study_export_writes_the_self_contained_bundle(mf_study: Study, tmp_path: Path) -> None:
    cid = mf_study.best_candidates()[0]["id"]
    out = mf_study.export(cid, tmp_path / "s")
    card = json.loads((out / "card.json").read_text())
    assert card["candidate_id"] == cid and card["dataset"] == "digits" and (out / "student.pt").exists()
    with pytest.raises(EvoFusionError, match="not empty"):
        mf_study.export(cid, tmp_path / "s")
    with pytest.raises(EvoFusionError, match="not a COMPLETE candidate"):
        mf_study.export(10_000, tmp_path / "t")


def test_version_flag() -> None:
    from typer.testing import CliRunner

    from evofusion import __version__
    from evofusion.cli import app

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"evofusion {__version__}"
