"""int8 quantization, ONNX Runtime accuracy and latency, the latency_ort_ms objective, and
``evofusion export --onnx --int8``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from typer.testing import CliRunner  # noqa: E402

from evofusion import Study  # noqa: E402
from evofusion.cli import app  # noqa: E402
from evofusion.data import load_dataset  # noqa: E402
from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train  # noqa: E402
from evofusion.errors import ConfigError, EvoFusionError  # noqa: E402
from evofusion.export.onnx_export import export_onnx  # noqa: E402
from evofusion.export.quantize import calibration_sample, onnx_accuracy, ort_latency_ms, quantize_int8  # noqa: E402
from evofusion.genome import StageGene, StudentGenome, build  # noqa: E402
from evofusion.objectives.metrics import count_params  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory: pytest.TempPathFactory):
    """A ~5k-parameter student trained briefly on digits, exported to fp32 ONNX."""
    genome = StudentGenome(stages=(StageGene(16), StageGene(32)), input_size=8)
    torch.manual_seed(0)
    model = build(genome)
    x, y = digits.train.tensors()
    train(model, x, y, TrainConfig(epochs=6, batch_size=64, alpha=1.0, lr=1e-2),
          generator=torch.Generator().manual_seed(0))
    model.eval()
    path = tmp_path_factory.mktemp("onnx") / "student.onnx"
    export_onnx(model, SHAPE, path)
    return model, path


def test_int8_is_smaller_and_about_as_accurate(trained, digits, tmp_path: Path) -> None:
    model, fp32 = trained
    assert count_params(model) >= 5000
    calib = calibration_sample(digits, 256, seed=0)
    assert calib.shape == (256, *SHAPE) and calib.dtype == np.float32
    res = quantize_int8(fp32, tmp_path / "student.int8.onnx", calib)
    assert res["format"] == "QDQ" and res["per_channel"] and res["calibration_samples"] == 256
    assert res["int8_size_kb"] < 0.8 * res["fp32_size_kb"]  # measured: 13.7 KB vs 24.2 KB
    assert res["int8_size_kb"] == pytest.approx((tmp_path / "student.int8.onnx").stat().st_size / 1024)
    vx, vy = digits.val.x, digits.val.y
    acc_torch = evaluate_accuracy(model, *digits.val.tensors())
    acc_fp32 = onnx_accuracy(fp32, vx, vy)
    acc_int8 = onnx_accuracy(res["path"], vx, vy, batch=50)
    assert acc_fp32 > 0.85  # the short training worked
    assert acc_fp32 == pytest.approx(acc_torch, abs=1.5 / len(vy))  # parity: at most a borderline flip
    assert abs(acc_fp32 - acc_int8) <= 0.03


def test_calibration_must_be_nchw(trained, tmp_path: Path) -> None:
    with pytest.raises(EvoFusionError, match="calibration"):
        quantize_int8(trained[1], tmp_path / "q.onnx", np.zeros((0, *SHAPE), np.float32))
    with pytest.raises(EvoFusionError, match="calibration"):
        quantize_int8(trained[1], tmp_path / "q.onnx", np.zeros((4, 64), np.float32))


def test_ort_latency_reports_threads_and_runtime(trained) -> None:
    res = ort_latency_ms(trained[1], SHAPE, threads=1, batch=4, warmup=2, runs=20)
    assert res["runs"] == 20 and res["threads"] == 1 and res["batch"] == 4
    assert res["device"] == "cpu" and res["provider"] == "CPUExecutionProvider"
    assert res["runtime"].startswith("onnxruntime ")
    assert math.isfinite(res["latency_ms"]) and res["latency_ms"] > 0
    with pytest.raises(ConfigError, match="threads"):
        ort_latency_ms(trained[1], SHAPE, threads=0)


def test_latency_ort_objective_in_a_study(tmp_path: Path) -> None:
    cfg = tiny_config(**{"generations": 1, "strategy.population": 2, "teacher.enabled": False,
                         "objectives.names": ["accuracy", "params", "latency_ort_ms"],
                         "objectives.constraints": ["latency_ort_ms <= 1000"]})
    study = Study.create(cfg, tmp_path / "run", log=lambda *_: None)
    try:
        study.optimize()
        rows = study.store.candidates()
    finally:
        study.close()
    assert len(rows) == 2
    for r in rows:
        assert r["status"] == "COMPLETE", r["reason"]
        v = r["objective_values"]["latency_ort_ms"]
        assert math.isfinite(v) and v > 0
        info = r["train"]["latency_ort"]
        assert info["latency_ms"] == v and info["threads"] == 1 and info["device"] == "cpu"


def test_cli_export_onnx_int8_end_to_end(tmp_path: Path) -> None:
    runner = CliRunner()
    run, out = tmp_path / "run", tmp_path / "student"
    r = runner.invoke(app, ["search", "--data", "digits", "--population", "2", "--generations", "1",
                            "--no-teacher", "--run-dir", str(run), "--set", "data.limit=300",
                            "--set", "distill.steps=10", "--set", "final.epochs=1", "--quiet"],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export", str(run), "--candidate", "best", "--out", str(out), "--onnx", "--int8",
                            "--calibration", "128"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert {"student.onnx", "student.int8.onnx", "card.json", "genome.json"} <= {p.name for p in out.iterdir()}
    dep = json.loads((out / "card.json").read_text())["deployment"]
    assert dep["onnx"]["max_abs_error"] <= 1e-4 and dep["onnx"]["path"] == "student.onnx"
    assert dep["int8"]["int8_size_kb"] > 0 and dep["int8"]["calibration_samples"] == 128
    assert dep["int8"]["calibration_split"] == "train"
    for split in ("val", "test"):
        assert {"onnx_fp32", "onnx_int8"} <= set(dep["accuracy"][split])
        assert all(0 <= a <= 1 for a in dep["accuracy"][split].values() if isinstance(a, float))
    assert dep["latency_ort"]["fp32"]["threads"] == 1 and dep["latency_ort"]["int8"]["latency_ms"] > 0
    assert dep["compute"]["flops"] == 2 * dep["compute"]["macs"] > 0

    plain = tmp_path / "plain"
    r = runner.invoke(app, ["export", str(run), "--out", str(plain)], catch_exceptions=False)
    assert r.exit_code == 0 and not (plain / "student.onnx").exists()
    assert "deployment" not in json.loads((plain / "card.json").read_text())
