from __future__ import annotations

from pathlib import Path

import pytest

from evofusion import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "teacher").mkdir(parents=True)  # the README's teacher, trained before the search
    cfg = load_config(path)
    assert cfg.strategy.population >= 2


def test_the_yaml_example_is_the_readme_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: `evofusion search --config examples/fashion_mnist.yaml` is "the same from YAML" as the
    command above it; both give one config (the CLI's _run receives them)."""
    import re
    import shlex

    from typer.testing import CliRunner

    import evofusion.cli as cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"^evofusion search --data fashion-mnist --teacher runs/teacher .*?--run-dir runs/fm$", readme,
                  re.M | re.S)
    assert m, "the README's Fashion-MNIST command"
    args = shlex.split(m.group(0).replace("\\\n", " "))[1:]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "teacher").mkdir(parents=True)
    got = []
    orig = cli._run
    cli._run = lambda cfg, run_dir, **kw: got.append(cfg.to_dict())  # type: ignore[assignment]
    try:
        for a in (args, ["search", "--config", str(EXAMPLES[0].parent / "fashion_mnist.yaml"), "--run-dir", "x"]):
            r = CliRunner().invoke(cli.app, a)
            assert r.exit_code == 0, r.output
    finally:
        cli._run = orig
    assert got[0] == got[1]
