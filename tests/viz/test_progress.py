"""Progress everywhere: a Rich bar on a terminal, plain periodic lines otherwise, none with --quiet."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.viz.progress import LogProgress, RichProgress, make_progress


class _Run:
    kind = "search"

    def __init__(self) -> None:
        self.done = 0

    def progress(self) -> tuple[int, int, str]:
        return self.done, 8, "candidate"


def test_log_progress_prints_throttled_plain_lines() -> None:
    buf = io.StringIO()
    p = LogProgress(Console(file=buf, width=200), every=1e9)
    run = _Run()
    p.on_study_start(run)
    for _ in range(3):
        run.done += 1
        p.on_candidate_end(run, SimpleNamespace(status="COMPLETE", values={"accuracy": 0.5 + run.done / 10}))
    p.on_generation_end(run, 0, [])
    p.on_study_end(run)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3  # start, generation end, end: candidate ends inside `every` print nothing
    assert lines[0].startswith("search: 0/8 candidates")
    assert "3/8 candidates, best val acc 0.8000" in lines[1] and "elapsed" in lines[1] and "eta" in lines[1]


class _TimedRun(_Run):
    elapsed = 0.0

    def progress(self) -> tuple[int, None, str]:
        return 0, None, "candidate"  # the store counts at generation ends only

    def time_budget(self) -> float:
        return 600.0


def test_log_progress_under_a_time_budget_counts_candidates_and_the_clock() -> None:
    buf = io.StringIO()
    p = LogProgress(Console(file=buf, width=200), every=0)
    run = _TimedRun()
    p.on_study_start(run)
    for _ in range(2):
        p.on_candidate_end(run, SimpleNamespace(status="COMPLETE", values={"accuracy": 0.7}))
    last = buf.getvalue().splitlines()[-1]
    assert last.startswith("search: 2 candidates, best val acc 0.7000")  # no made-up total
    assert "of the time budget left" in last and ("9m59s" in last or "10m00s" in last)


def test_make_progress_follows_the_terminal() -> None:
    assert make_progress(Console(file=io.StringIO()), quiet=True) == []
    assert isinstance(make_progress(Console(file=io.StringIO(), force_terminal=False))[0], LogProgress)
    assert isinstance(make_progress(Console(file=io.StringIO(), force_terminal=True))[0], RichProgress)


def test_grow_and_evolve_weights_report_progress_when_not_a_terminal(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["grow", "--data", "digits", "--limit", "300", "--no-teacher", "--steps", "20",
                                 "--grow-every", "10", "--max-params", "3000", "--controller", "random",
                                 "--set", "growth.eval_size=60", "--set", "growth.calib_size=32",
                                 "--run-dir", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert "grow: 0/20 steps" in r.output and "grow: 20/20 steps" in r.output
    r = CliRunner().invoke(app, ["evolve-weights", "--data", "digits", "--limit", "300", "--population", "4",
                                 "--generations", "2", "--set", "ancestors.epochs=1",
                                 "--run-dir", str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    assert "weights: 0/2 generations" in r.output or "weights: 0/" in r.output
    r = CliRunner().invoke(app, ["grow", "--data", "digits", "--limit", "300", "--no-teacher", "--steps", "20",
                                 "--grow-every", "10", "--quiet", "--run-dir", str(tmp_path / "q")])
    assert r.exit_code == 0 and "grow:" not in r.output


def test_log_progress_reports_from_inside_a_candidates_training(tmp_path: Path) -> None:
    from evofusion import Study
    from evofusion.engine import evaluator
    from tests.conftest import tiny_config

    buf = io.StringIO()
    p = LogProgress(Console(file=buf, width=200), every=0)
    s = Study.create(tiny_config(generations=1, final={"top_k": 0}), tmp_path / "run", callbacks=[p],
                     log=lambda *_: None)
    try:
        s.optimize()
    finally:
        s.close()
    inside = [x for x in buf.getvalue().splitlines() if " at step " in x]
    assert inside and inside[0].startswith("search: candidate 0 at step 1/12")
    assert evaluator._TRAINING_PROGRESS[0] is None  # unhooked at the end
