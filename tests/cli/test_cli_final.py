"""``search --final-seconds``: the winners' fine-tune phase under a wall clock, from the CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.store import RunStore
from tests.cli.test_cli_lifecycle import SEARCH

runner = CliRunner()


def test_final_seconds_reaches_the_config_and_the_fine_tune(tmp_path: Path) -> None:
    run = tmp_path / "r"
    r = runner.invoke(app, [*SEARCH, "--generations", "1", "--top-k", "2", "--final-seconds", "600",
                            "--run-dir", str(run)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.config()["final"]["max_seconds"] == 600
        finals = s.finals()
    assert len(finals) == 2 and all(f["train"]["steps"] >= 1 for f in finals)


def test_bad_final_seconds_exits_2_naming_the_field(tmp_path: Path) -> None:
    r = runner.invoke(app, [*SEARCH, "--generations", "1", "--final-seconds", "0", "--run-dir", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert "final.max_seconds" in r.output


def test_final_split_steps_gives_the_winners_one_step_count(tmp_path: Path) -> None:
    run = tmp_path / "r"
    r = runner.invoke(app, [*SEARCH, "--generations", "1", "--top-k", "2", "--final-seconds", "8",
                            "--final-split", "steps", "--set", "final.steps=1000000", "--set", "final.patience=0",
                            "--run-dir", str(run)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.config()["final"]["split"] == "steps"
        steps = [f["train"]["steps"] for f in s.finals()]
    assert len(steps) == 2 and steps[0] == steps[1] >= 1


def test_bad_final_split_exits_2_naming_the_field(tmp_path: Path) -> None:
    r = runner.invoke(app, [*SEARCH, "--generations", "1", "--final-split", "even", "--run-dir", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert "final.split" in r.output
