"""ONNX export: ONNX Runtime reproduces PyTorch to 1e-4, or nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from evofusion.data import load_dataset  # noqa: E402
from evofusion.errors import EvoFusionError  # noqa: E402
from evofusion.export import onnx_export  # noqa: E402
from evofusion.export.onnx_export import export_onnx  # noqa: E402
from evofusion.genome import HeadGene, StageGene, StudentGenome, build  # noqa: E402
from evofusion.objectives.edge import ort_session  # noqa: E402

SHAPE = (1, 8, 8)
GENOMES = {
    "skip_gap": StudentGenome(stages=(StageGene(8, depth=2, skip=True), StageGene(16, kernel=5)), input_size=8),
    "flatten_hidden": StudentGenome(stages=(StageGene(6, pool="avg"),), head=HeadGene("flatten", hidden=24),
                                    input_size=8),
    "gelu_hardswish": StudentGenome(stages=(StageGene(8, activation="gelu", skip=True, depth=2),
                                            StageGene(12, activation="hardswish", pool="none")),
                                    head=HeadGene("gap", hidden=16, dropout=0.2), input_size=8),
}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(GENOMES[name])
    # a few training steps so BatchNorm statistics are not the identity
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *SHAPE))
    return model


@pytest.mark.parametrize("name", sorted(GENOMES))
def test_parity_within_1e4_on_random_and_real_inputs(tmp_path: Path, name: str) -> None:
    model = _model(name)
    real = load_dataset("digits", limit=100).val.x
    res = export_onnx(model, SHAPE, tmp_path / "m.onnx", inputs=real)
    assert model.training  # mode restored
    assert res["max_abs_error"] <= 1e-4 and res["atol"] == 1e-4
    assert res["exporter"] in ("dynamo", "torchscript") and res["opset"] >= 17
    assert Path(res["path"]).exists() and res["size_kb"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp or external-data file left
    # the batch axis is dynamic: any batch size runs and matches PyTorch element by element
    sess = ort_session(res["path"])
    model.eval()
    for n in (1, 5, 64):
        x = torch.randn(n, *SHAPE)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), model(x).detach(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_each_exporter_passes_parity(tmp_path: Path, exporter: str) -> None:
    res = export_onnx(_model("skip_gap"), SHAPE, tmp_path / "m.onnx", exporter=exporter)
    assert res["exporter"] == exporter and res["max_abs_error"] <= 1e-4


def test_failed_parity_raises_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"an older export")
    monkeypatch.setattr(onnx_export, "max_abs_error", lambda *a, **k: 1.0)
    with pytest.raises(EvoFusionError, match="parity"):
        export_onnx(_model("skip_gap"), SHAPE, target)
    assert list(tmp_path.iterdir()) == []


def test_real_inputs_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvoFusionError, match="per sample"):
        export_onnx(_model("skip_gap"), SHAPE, tmp_path / "m.onnx", inputs=np.zeros((4, 1, 28, 28), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from evofusion.objectives import edge

    real_import = builtins.__import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(EvoFusionError, match=r"pip install 'evofusion\[export\]'"):
        edge.require_ort()
