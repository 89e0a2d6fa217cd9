"""Config and CLI of the executors: ray, address, timeout, retries, recycling, resources."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from evofusion import Study
from evofusion.cli import app
from evofusion.config import validate_config
from evofusion.errors import ConfigError
from tests.conftest import tiny_config


def test_valid_executor_settings() -> None:
    cfg = validate_config(tiny_config(executor="ray", address="10.0.0.5:6379", timeout=600, retries=3,
                                      recycle_after=50, device="auto",
                                      resources={"cpus": 2, "gpus": 0.25}))
    assert cfg.executor == "ray" and cfg.address == "10.0.0.5:6379" and cfg.resources.gpus == 0.25
    assert validate_config(tiny_config(executor="ray", address="auto")).address == "auto"


@pytest.mark.parametrize("over,field", [
    ({"executor": "dask"}, "executor"),
    ({"address": "10.0.0.5:6379"}, "address"),  # only with executor ray
    ({"executor": "ray", "address": "no port"}, "address"),
    ({"timeout": 0}, "timeout"),
    ({"retries": -1}, "retries"),
    ({"recycle_after": 0}, "recycle_after"),
    ({"resources": {"gpus": 1.5}, "device": "auto"}, "resources.gpus"),
    ({"resources": {"gpus": 1}}, "device"),  # GPUs asked for on device cpu
    ({"resources": {"cpus": 0}}, "resources.cpus"),
    ({"resources": {"gpu_memory_mb": -5}}, "resources.gpu_memory_mb"),
    ({"resources": {"tpus": 1}}, "resources.tpus"),
])
def test_bad_executor_settings_name_the_field(over: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(tiny_config(**over))
    assert info.value.field == field, str(info.value)


@pytest.mark.parametrize("flags,field", [
    (["--executor", "dask"], "executor"),
    (["--executor", "ray", "--address", "nohost"], "address"),
    (["--timeout", "-3"], "timeout"),
    (["--gpus-per-candidate", "0.5"], "device"),
    (["--executor", "process", "--device", "cuda"], "device"),  # no GPU here: refused before the run dir
])
def test_cli_bad_executor_flags_exit_2(tmp_path: Path, flags: list[str], field: str) -> None:
    res = CliRunner().invoke(app, ["search", "--data", "digits", "--run-dir", str(tmp_path / "r"), *flags])
    assert res.exit_code == 2 and field in res.output, res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_resume_may_move_to_another_executor(tmp_path: Path) -> None:
    s = Study.create(tiny_config(generations=1), tmp_path / "r", log=lambda *_: None)
    s.optimize()
    s.close()
    s = Study.resume(tmp_path / "r", overrides={"generations": 2, "executor": "process", "workers": 2,
                                                "threads": 1, "timeout": 300, "retries": 1, "recycle_after": 10},
                     log=lambda *_: None)
    try:
        assert type(s.executor).__name__ == "ProcessExecutor" and s.executor.timeout == 300
        s.optimize()
        assert s.store.count("COMPLETE") == 8
    finally:
        s.close()
