"""One CLI convention: every long command takes --quiet and --json, help shows defaults and no type
labels on flags, and --json output is one JSON document on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from evofusion.cli import app

runner = CliRunner()
QUICK = ["--set", "data.limit=300", "--set", "distill.steps=10", "--set", "teacher.epochs=20",
         "--set", "final.epochs=1"]


def _commands() -> dict[str, object]:
    root = typer.main.get_command(app)
    out = {}
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):
            out.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            out[name] = cmd
    return out


LONG = ("search", "resume", "grow", "supernet", "prune", "evolve-weights", "distill", "export", "teacher train")


def test_every_long_command_takes_quiet_and_json() -> None:
    cmds = _commands()
    for name in LONG:
        opts = {o for p in cmds[name].params for o in p.opts}
        assert {"--quiet", "--json"} <= opts, name
    for name in ("report", "evaluate", "list"):
        assert "--json" in {o for p in cmds[name].params for o in p.opts}, name


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_has_no_flag_type_labels(name: str) -> None:
    r = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.output and "list[str]" not in r.output


def test_search_help_shows_the_config_defaults() -> None:
    r = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    for line in ("--population", "--strategy", "--steps", "--generations", "--top-k"):
        row = next(x for x in r.output.splitlines() if line + " " in x)
        assert "[default: " in row, row
    assert "(nsga2)" in r.output and "(200)" in r.output


def test_json_everywhere(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = runner.invoke(app, ["search", "--data", "digits", "--population", "4", "--generations", "1",
                            "--run-dir", str(run), "--json", *QUICK])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # stdout is exactly one document
    assert doc["kind"] == "search" and doc["run_dir"] == str(run) and Path(doc["report"]).exists()
    assert doc["pareto"] and doc["finals"] and {"id", "genome", "values"} <= doc["pareto"][0].keys()
    assert r.stderr == ""  # no progress, no log lines

    r = runner.invoke(app, ["resume", str(run), "--generations", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["kind"] == "search"

    out = tmp_path / "student"
    r = runner.invoke(app, ["export", str(run), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["out"] == str(out) and doc["card"]["dataset"] == "digits"

    r = runner.invoke(app, ["evaluate", str(out), "--no-latency", "--json"])
    assert r.exit_code == 0, r.output
    assert 0 <= json.loads(r.stdout)["accuracy"] <= 1 and json.loads(r.stdout)["data"] == "digits"
    r = runner.invoke(app, ["evaluate", str(out), "--no-latency"])
    assert r.exit_code == 0 and "accuracy" in r.stdout and "{" not in r.stdout  # a table by default

    r = runner.invoke(app, ["list", "--json"])
    reg = json.loads(r.stdout)
    assert {"strategies", "operators", "objectives", "weight strategies", "controllers (grow)",
            "operator controllers (search)", "executors", "trackers", "run kinds"} <= reg.keys()

    r = runner.invoke(app, ["grow", "--data", "digits", "--steps", "40", "--grow-every", "20", "--limit", "300",
                            "--run-dir", str(tmp_path / "grow"), "--json", "--set", "teacher.epochs=20"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["kind"] == "grow" and doc["result"]["params"] > 0

    r = runner.invoke(app, ["teacher", "train", "--arch", "small_cnn", "--data", "digits", "--epochs", "1",
                            "--limit", "200", "--out", str(tmp_path / "t"), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["arch"] == "small_cnn" and r.stderr == ""
