"""PruneStudy on the bundled digits with a tiny trained teacher: search, winning ticket, report,
resume, encodings, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evofusion.errors import ConfigError, RunStoreError, TeacherError
from evofusion.genome.prune import PruneGenome
from evofusion.prune import PruneStudy
from evofusion.viz import write_html_report
from tests.prune.conftest import _cfg, full_and_stopped


def _quiet(*a: Any) -> None:
    pass


def test_ga_run_finds_a_feasible_ticket_and_reports_it(teacher_dir: Path, tmp_path: Path) -> None:
    prune = {"teacher": str(teacher_dir), "target_params": 900, "eval_every": 4}
    study = PruneStudy.create(_cfg(), tmp_path / "run", prune=prune, log=_quiet)
    try:
        study.optimize()
        rows = study.store.candidates()
        assert len(rows) == 8 and all(r["genome"]["kind"] == "prune" for r in rows)
        assert {r["status"] for r in rows} <= {"COMPLETE", "INFEASIBLE"}
        rep = study.finish(log=_quiet)
        t, k = rep["teacher"], rep["ticket"]
        assert k["params"] <= 900 < t["params"]
        assert k["compression"] == pytest.approx(1 - k["params"] / t["params"])
        assert 0 < k["flops_reduction"] < 1 and 0 <= k["test_accuracy"] <= 1
        assert len(rep["robustness"]["ticket"]) == len(rep["robustness"]["sigma"]) == 4
        winner = study.store.candidate(rep["candidate_id"])
        assert winner is not None and winner["status"] == "COMPLETE"
        feasible = [r for r in rows if r["status"] == "COMPLETE"]
        assert winner["objective_values"]["accuracy"] == max(r["objective_values"]["accuracy"] for r in feasible)
        assert sum(PruneGenome.from_dict(winner["genome"]).keep_masks()[0]) == k["kept"][0]
        html = write_html_report(study.store).read_text()
        title = "Pruning: the winning ticket" if rep["verdict"]["winner"] else "Pruning: no winning ticket"
        assert title in html and "Gaussian" in html
    finally:
        study.close()


def test_resumed_run_equals_uninterrupted(teacher_dir: Path, tmp_path: Path) -> None:
    prune = {"teacher": str(teacher_dir), "target_params": 1200, "eval_every": 4}
    a = full_and_stopped(prune, tmp_path)
    with pytest.raises(RunStoreError, match="pruning run"):  # the plain Study refuses a pruning run
        from evofusion.engine import Study

        Study.resume(tmp_path / "part", log=_quiet)
    resumed = PruneStudy.resume(tmp_path / "part", overrides={"generations": 2}, log=_quiet)
    resumed.optimize()
    b = [(r["genome_hash"], r["objective_values"].get("accuracy")) for r in resumed.store.candidates()]
    resumed.close()
    assert a == b


@pytest.mark.parametrize(("encoding", "init", "extra"), [("block", "taylor", "compression"),
                                                         ("layer", "random", "latency_ms")])
def test_nsga2_coarse_encodings(teacher_dir: Path, tmp_path: Path, encoding: str, init: str, extra: str) -> None:
    cfg = _cfg(generations=2, strategy={"name": "nsga2", "population": 4},
               objectives={"names": ["accuracy", "params", extra]})
    prune = {"teacher": str(teacher_dir), "encoding": encoding, "levels": 4, "init": init,
             "keep_range": [0.2, 0.7]}
    study = PruneStudy.create(cfg, tmp_path / "run", prune=prune, log=_quiet)
    try:
        study.optimize()
        rows = study.store.candidates()
        assert all(r["status"] == "COMPLETE" for r in rows), [r["reason"] for r in rows]
        assert all(r["objective_values"][extra] > 0 for r in rows)
        assert any(r["operator"] for r in rows)  # the second generation came from mask operators
        g = PruneGenome.from_dict(rows[0]["genome"])
        assert g.encoding == encoding
        assert study.pareto_ids()
        assert study.winning_ticket() in {r["id"] for r in rows}
    finally:
        study.close()


def test_bad_inputs_name_the_field(teacher_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="--teacher"):
        PruneStudy.create(_cfg(), tmp_path / "a", prune={"teacher": str(tmp_path / "nope")}, log=_quiet)
    with pytest.raises(ConfigError) as e:
        PruneStudy.create(_cfg(), tmp_path / "b", prune={"teacher": str(teacher_dir), "encoding": "bits"})
    assert e.value.field == "prune.encoding"
    with pytest.raises(ConfigError) as e:
        PruneStudy.create(_cfg(), tmp_path / "c", prune={"teacher": str(teacher_dir), "keep_range": [0.5, 0.2]})
    assert e.value.field.startswith("prune")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_ticket_far_below_the_teacher_is_not_called_a_winner() -> None:
    from evofusion.prune.study import ticket_verdict
    from evofusion.viz.prune_section import prune_markdown, prune_section_html

    rep = {"teacher": {"test_accuracy": 0.98}, "ticket": {"test_accuracy": 0.12}, "failed": 7, "evaluated": 8}
    v = ticket_verdict(rep, 0.10)
    assert not v["winner"] and abs(v["drop"] - 0.86) < 1e-9
    assert "86.0 pp below the teacher" in v["text"] and "7 of 8 candidates FAILED" in v["text"]
    assert ticket_verdict({**rep, "ticket": {"test_accuracy": 0.95}, "failed": 0}, 0.10)["winner"]
    full = {"verdict": v, "target_params": None, "evaluated": 8, "encoding": "channel", "candidate_id": 3,
            "teacher": {"arch": "x", "width": 1, "params": 100, "flops": 10, "test_accuracy": 0.98, "latency_ms": 1},
            "ticket": {"params": 10, "flops": 1, "compression": 0.9, "flops_reduction": 0.9, "val_accuracy": 0.1,
                       "test_accuracy": 0.12, "latency_ms": 0.5, "kept": [1], "groups": [4], "roots": ["c"]},
            "robustness": {"sigma": [0.0], "teacher": [0.98], "ticket": [0.12]}}
    assert prune_markdown(full).startswith("**WARNING: no winning ticket")
    assert "Pruning: no winning ticket" in prune_section_html(full)
