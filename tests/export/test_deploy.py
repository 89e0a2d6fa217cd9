"""Self-contained exports: normalization inside student.onnx / student.uint8.onnx / student.pt, the
card's top-level fields, evaluate reading the data set from the card, and raw images scoring the
stated accuracy in an environment that has only onnxruntime + numpy (or only torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")

from evofusion.cli import app  # noqa: E402
from evofusion.errors import EvoFusionError  # noqa: E402
from evofusion.export.deploy import Normalized, as_uint8, unit_range  # noqa: E402
from evofusion.genome import StageGene, StudentGenome, build  # noqa: E402
from tests.data.test_datasets import write_mnist_like  # noqa: E402


def test_normalized_module_equals_the_student_on_normalized_inputs() -> None:
    torch.manual_seed(0)
    model = build(StudentGenome(stages=(StageGene(4), StageGene(8)), in_channels=3, input_size=8)).eval()
    mean, std = [0.2, 0.4, 0.6], [0.3, 0.2, 0.1]
    pixels = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    x01 = pixels.float() / 255
    m, s = torch.tensor(mean).reshape(1, 3, 1, 1), torch.tensor(std).reshape(1, 3, 1, 1)
    with torch.no_grad():
        ref = model((x01 - m) / s)
        assert torch.allclose(Normalized(model, mean, std)(x01), ref, atol=1e-5)
        assert torch.allclose(Normalized(model, mean, std, uint8=True)(pixels), ref, atol=1e-5)
    back = unit_range(((x01 - m) / s).numpy(), mean, std)
    assert np.allclose(back, x01.numpy(), atol=1e-6)
    assert (as_uint8(back) == pixels.numpy()).all()
    assert as_uint8(np.full((1, 1, 2, 2), 1 / 16, dtype=np.float32)) is None  # digits' 17 grey levels
    with pytest.raises(EvoFusionError, match="positive std"):
        Normalized(model, mean, [0.1, 0.0, 0.2])


def _isolated_python(tmp: Path, packages: list[str]) -> list[str]:
    """A python that sees only ``packages`` (symlinked from this environment) and the stdlib: no
    evofusion, no torch unless listed."""
    import importlib.util

    site = tmp / "site"
    site.mkdir()
    for name in packages:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        if spec.submodule_search_locations:  # a package (namespace packages too)
            root = Path(list(spec.submodule_search_locations)[0])
            (site / name).symlink_to(root)
            for extra in root.parent.glob(f"{name}.libs"):  # vendored shared libraries (numpy wheels)
                (site / extra.name).symlink_to(extra)
        else:  # a single-file module
            assert spec.origin is not None, name
            (site / Path(spec.origin).name).symlink_to(spec.origin)
    return [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "]


PLAIN_ORT = """
import json, numpy as np, onnxruntime as ort
for mod in ('evofusion', 'torch'):
    try:
        __import__(mod)
        raise SystemExit(mod + ' is importable: not an isolated environment')
    except ImportError:
        pass
d = json.load(open('{data}'))
x, y = np.asarray(d['x'], dtype=np.{dtype}), np.asarray(d['y'])
s = ort.InferenceSession('{model}', providers=['CPUExecutionProvider'])
print(json.dumps(float((s.run(None, {{s.get_inputs()[0].name: x}})[0].argmax(1) == y).mean())))
"""


def _search(tmp: Path, *extra: str) -> Path:
    run = tmp / "run"
    r = CliRunner().invoke(app, ["search", "--population", "2", "--generations", "1", "--no-teacher",
                                 "--run-dir", str(run), "--set", "distill.steps=10", "--set", "final.epochs=1",
                                 "--set", "space.max_stages=2", "--quiet", *extra], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return run


@pytest.mark.slow
def test_a_fashion_mnist_layout_export_scores_its_card_on_raw_uint8_in_plain_onnxruntime(tmp_path: Path) -> None:
    data_dir = write_mnist_like(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=60, size=28, gz=False)
    run = _search(tmp_path, "--data", "fashion-mnist", "--data-dir", str(data_dir.parent))
    out = tmp_path / "student"
    r = CliRunner().invoke(app, ["export", str(run), "--out", str(out), "--onnx", "--calibration", "32",
                                 "--data-dir", str(data_dir.parent)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"] == "fashion-mnist" and card["input"]["shape"] == [1, 28, 28]
    assert card["class_names"][9] == "Ankle boot" and len(card["normalization"]["mean"]) == 1
    assert card["deployment"]["uint8"]["path"] == "student.uint8.onnx"
    stated = card["deployment"]["accuracy"]["test"]
    # the test images as a user has them: the IDX file's uint8 pixels, straight from disk
    from evofusion.data.idx import read_idx

    pixels = read_idx(data_dir / "t10k-images-idx3-ubyte")[:, None]
    labels = read_idx(data_dir / "t10k-labels-idx1-ubyte")
    blob = tmp_path / "test.json"
    blob.write_text(json.dumps({"x": pixels.tolist(), "y": labels.tolist()}))
    py = _isolated_python(tmp_path, ["numpy", "onnxruntime"] + _ort_deps())
    for model, dtype, key in (("student.uint8.onnx", "uint8", "onnx_uint8_input"),
                              ("student.onnx", "float32", "onnx_fp32")):
        code = PLAIN_ORT.format(data=blob, dtype=dtype, model=out / model)
        if dtype == "float32":
            code = code.replace("dtype=np.float32)", "dtype=np.float32) / 255")
        p = subprocess.run([*py[:-1], py[-1] + code], capture_output=True, text=True, timeout=120,
                           env={"PATH": os.environ.get("PATH", "")})
        assert p.returncode == 0, p.stderr
        assert abs(json.loads(p.stdout.strip().splitlines()[-1]) - stated[key]) < 1e-9, (model, p.stdout)


def _ort_deps() -> list[str]:
    """Packages onnxruntime imports at load time in this environment (besides numpy)."""
    out = []
    for name in ("flatbuffers", "packaging", "google", "coloredlogs", "humanfriendly", "sympy", "mpmath"):
        try:
            __import__(name)
            out.append(name)
        except ImportError:
            pass
    return out


def test_digits_export_is_self_contained_and_evaluate_reads_the_card(tmp_path: Path) -> None:
    run = _search(tmp_path, "--data", "digits", "--set", "data.limit=300")
    out = tmp_path / "student"
    r = CliRunner().invoke(app, ["export", str(run), "--out", str(out), "--onnx", "--calibration", "32"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"] == "digits" and card["input"]["layout"] == "NCHW"
    assert card["metrics"]["search"]["accuracy"] == card["objectives"]["accuracy"]
    assert card["deployment"]["uint8"] is None and not (out / "student.uint8.onnx").exists()  # 17 grey levels
    assert card["torchscript"]["path"] == "student.pt" and card["torchscript"]["max_abs_error"] <= 1e-5

    from evofusion.data import load_dataset

    splits = load_dataset("digits", limit=300)
    x01 = unit_range(splits.test.x, splits.mean, splits.std)
    # student.pt needs torch only: a python with torch + numpy and no evofusion
    code = (f"import torch, numpy as np; m = torch.jit.load({str(out / 'student.pt')!r}); "
            f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r})); "
            f"y = np.load({str(tmp_path / 'y.npy')!r}); "
            "print(float((m(x).argmax(1).numpy() == y).mean()))")
    np.save(tmp_path / "x.npy", x01)
    np.save(tmp_path / "y.npy", splits.test.y)
    py = _isolated_python(tmp_path, ["torch", "torchgen", "numpy", "typing_extensions", "sympy", "mpmath", "networkx",
                                     "jinja2", "markupsafe", "filelock", "fsspec"])
    p = subprocess.run([*py[:-1], py[-1] + "import importlib.util as u; assert u.find_spec('evofusion') is None; "
                        + code], capture_output=True, text=True, timeout=300, env={"PATH": os.environ.get("PATH", "")})
    assert p.returncode == 0, p.stderr[-2000:]
    assert abs(float(p.stdout.strip().splitlines()[-1]) - card["deployment"]["accuracy"]["test"]["onnx_fp32"]) < 1e-9

    r = CliRunner().invoke(app, ["evaluate", str(out), "--no-latency", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output  # no --data: the card's data set (digits), its whole test split
    assert 0 <= json.loads(r.output)["accuracy"] <= 1
    (out / "card.json").write_text("{}")
    r = CliRunner().invoke(app, ["evaluate", str(out), "--no-latency"])
    assert r.exit_code == 2 and "pass --data" in r.output
