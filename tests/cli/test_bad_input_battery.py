"""The bad-input battery: every bad input to every command exits 2 with a message that names the field
or file and what to do, prints no traceback, and leaves no run directory or output folder behind.

One table row a case: ``(case id, kind, builder)``; the builder gets the shared fixtures and returns
the command line, the regex the message must match, and the paths that must not exist afterwards.
``test_battery_table`` prints the per-kind summary the closing note quotes.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.data.idx import write_idx

runner = CliRunner()
QUICK = ["--data", "digits", "--limit", "200", "--no-teacher", "--population", "2", "--generations", "1",
         "--steps", "3", "--top-k", "0", "--quiet"]


@dataclass
class Env:
    tmp: Path  # a fresh folder of the case
    run: Path  # a finished tiny run (shared, read-only)
    bundle: Path  # an exported student of it (shared, read-only)
    teacher: Path  # a trained zoo teacher dir (shared, read-only)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("battery")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVOFUSION_CACHE", str(tmp_path_factory.getbasetemp() / "evofusion-cache"))
    try:
        run, bundle, teacher = base / "run", base / "bundle", base / "teacher"
        res = runner.invoke(app, ["search", *QUICK, "--run-dir", str(run)])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["export", str(run), "--candidate", "best", "--out", str(bundle)])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["teacher", "train", "--arch", "small_cnn", "--data", "digits", "--limit", "200",
                                  "--epochs", "1", "--width", "0.25", "--out", str(teacher)])
        assert res.exit_code == 0, res.output
    finally:
        mp.undo()
    return {"run": run, "bundle": bundle, "teacher": teacher}


Case = tuple[list[str], str, list[Path]]


def _search(env: Env, *extra: str) -> Case:
    run = env.tmp / "new-run"
    quick = [a for a in QUICK if a != "--no-teacher"] if "--teacher" in extra else QUICK
    return ["search", *quick, *extra, "--run-dir", str(run)], "", [run]


def _with(case: Case, pattern: str) -> Case:
    return case[0], pattern, case[2]


def _config_file(env: Env, content: bytes, pattern: str) -> Case:
    f = env.tmp / "cfg.yaml"
    f.write_bytes(content)
    run = env.tmp / "new-run"
    return ["search", "--config", str(f), "--run-dir", str(run)], pattern, [run]


def _fmnist_dir(env: Env, images: np.ndarray | bytes | None = None, labels: np.ndarray | None = None) -> Path:
    d = env.tmp / "fm"
    d.mkdir()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 60).astype(np.uint8)
    write_idx(d / "train-images-idx3-ubyte", x)
    write_idx(d / "train-labels-idx1-ubyte", y if labels is None else labels)
    write_idx(d / "t10k-images-idx3-ubyte", x[:20])
    write_idx(d / "t10k-labels-idx1-ubyte", y[:20])
    if isinstance(images, bytes):
        (d / "train-images-idx3-ubyte").write_bytes(images)
    return d


def _fmnist(env: Env, pattern: str, **kw) -> Case:
    d = _fmnist_dir(env, **kw)
    run = env.tmp / "new-run"
    args = ["search", "--data", "fashion-mnist", "--data-dir", str(d), "--no-teacher", "--population", "2",
            "--generations", "1", "--steps", "2", "--top-k", "0", "--quiet", "--run-dir", str(run)]
    return args, pattern, [run]


def _teacher_json(env: Env, change: Callable[[dict], object] | bytes, pattern: str) -> Case:
    t = env.tmp / "teacher"
    shutil.copytree(env.teacher, t)
    if isinstance(change, bytes):
        (t / "teacher.json").write_bytes(change)
    else:
        meta = json.loads((t / "teacher.json").read_text())
        change(meta)
        (t / "teacher.json").write_text(json.dumps(meta))
    return _with(_search(env, "--teacher", str(t)), pattern)


def _bundle(env: Env, change: Callable[[Path], None], pattern: str) -> Case:
    b = env.tmp / "student"
    shutil.copytree(env.bundle, b)
    change(b)
    return ["evaluate", str(b), "--data", "digits", "--no-latency"], pattern, []


def _genome_edit(**fields: object) -> Callable[[Path], None]:
    def change(b: Path) -> None:
        g = json.loads((b / "genome.json").read_text())
        for k, v in fields.items():
            if k.startswith("stage0."):
                g["stages"][0][k.split(".", 1)[1]] = v
            elif k == "drop_stage":
                g["stages"] = g["stages"][:-1] if len(g["stages"]) > 1 else g["stages"] * 2
            else:
                g[k] = v
        (b / "genome.json").write_text(json.dumps(g))
    return change


def _nan_weights(b: Path) -> None:
    state = load_file(b / "weights.safetensors")
    k = next(k for k, v in state.items() if v.is_floating_point())
    state[k] = torch.full_like(state[k], float("nan"))
    save_file(state, b / "weights.safetensors")


def _export(env: Env, out: Path, pattern: str, run: Path | None = None, *extra: str) -> Case:
    return ["export", str(run or env.run), "--candidate", "best", "--out", str(out), *extra], pattern, []


def _export_missing_weights(env: Env) -> Case:
    run = env.tmp / "run"
    shutil.copytree(env.run, run)
    shutil.rmtree(run / "weights")
    out = env.tmp / "out"
    return ["export", str(run), "--candidate", "best", "--out", str(out)], r"weights .*missing", [out]


def _export_onto_file(env: Env) -> Case:
    (env.tmp / "afile").write_text("x")
    return _export(env, env.tmp / "afile", r"--out: .*afile is a file")


def _export_nonempty(env: Env) -> Case:
    (env.tmp / "out").mkdir()
    (env.tmp / "out" / "student.onnx").write_text("stale")
    return _export(env, env.tmp / "out", r"--out: .* not empty.*--force")


CASES: list[tuple[str, str, Callable[[Env], Case]]] = [
    # --- config files and flags ---------------------------------------------------------------
    ("yaml_binary", "config", lambda e: _config_file(e, b"\x00\x01\xff\xfe", r"config: .* not UTF-8")),
    ("yaml_utf16", "config", lambda e: _config_file(e, "seed: 1\n".encode("utf-16"), r"config: .* not UTF-8")),
    ("yaml_not_mapping", "config", lambda e: _config_file(e, b"[1, 2]", r"config: .* mapping")),
    ("yaml_invalid", "config", lambda e: _config_file(e, b"a: [1, 2\n", r"config: .* not valid YAML")),
    ("config_folder", "config", lambda e: (["search", "--config", str(e.tmp), "--run-dir", str(e.tmp / "r")],
                                           r"config: .* is a folder", [e.tmp / "r"])),
    ("config_missing", "config", lambda e: (["search", "--config", str(e.tmp / "nope.yaml"), "--run-dir",
                                             str(e.tmp / "r")], r"config: .* does not exist", [e.tmp / "r"])),
    ("unknown_key", "config", lambda e: _with(_search(e, "--set", "foo=1"), r"foo")),
    ("set_without_equals", "config", lambda e: _with(_search(e, "--set", "seed"), r"--set 'seed': expected KEY=VALUE")),
    ("head_hidden_negative", "config", lambda e: _with(_search(e, "--set", "space.head_hidden=[-5]"),
                                                       r"space.head_hidden: .*\[0, 65536\]")),
    ("widths_zero", "config", lambda e: _with(_search(e, "--set", "space.widths=[0]"), r"space.widths")),
    ("generations_bool", "config", lambda e: _with(_search(e, "--set", "generations=true"), r"generations")),
    ("generations_string", "config", lambda e: _with(_search(e, "--set", 'generations="8"'), r"generations")),
    ("population_1", "config", lambda e: _with(_search(e, "--set", "strategy.population=1"), r"strategy.population")),
    ("strategy_unknown", "config", lambda e: _with(_search(e, "--strategy", "annealing"), r"strategy.name")),
    ("cache_dir_is_file", "config", lambda e: ((e.tmp / "f").write_text("x") and None) or _with(
        _search(e, "--set", f"cache_dir={e.tmp / 'f'}"), r"cache_dir: .* is a file")),
    ("temperature_degenerate", "config", lambda e: _with(_search(e, "--set", "distill.temperature=1e-30"),
                                                         r"distill.temperature")),
    ("device_cuda_without_cuda", "config", lambda e: _with(_search(e, "--device", "cuda"), r"device: .*CUDA")
     if not torch.cuda.is_available() else _with(_search(e, "--device", "cuda:99"), r"device: .*CUDA device")),
    ("weights_of_unknown_objective", "config", lambda e: _with(_search(e, "--set", "objectives.weights={foo: 1}"),
                                                               r"objectives.weights: .*'foo'")),
    ("data_dir_for_digits", "config", lambda e: _with(_search(e, "--data-dir", str(e.tmp)), r"data.data_dir")),
    ("resume_no_run", "config", lambda e: (["resume", str(e.tmp / "none")], r"holds no run", [e.tmp / "none"])),
    # --- constraints ----------------------------------------------------------------------------
    ("constraint_nan", "constraints", lambda e: _with(_search(e, "--constraint", "params<=nan"), r"finite")),
    ("constraint_negative", "constraints", lambda e: _with(_search(e, "--constraint", "params<=-1"),
                                                           r"no student can meet")),
    ("constraint_contradictory", "constraints", lambda e: _with(
        _search(e, "--constraint", "params<=100", "--constraint", "params>=1000"), r"contradict")),
    ("constraint_accuracy_2", "constraints", lambda e: _with(_search(e, "--constraint", "accuracy>=2"),
                                                             r"accuracy is a share in \[0, 1\]")),
    ("constraint_unknown_metric", "constraints", lambda e: _with(_search(e, "--constraint", "speed<=3"),
                                                                 r"unknown metric 'speed'")),
    ("constraint_not_a_number", "constraints", lambda e: _with(_search(e, "--constraint", "params<=lots"),
                                                               r"not a number")),
    # --- data files ------------------------------------------------------------------------------
    ("idx_size_overflow", "data", lambda e: _fmnist(e, r"train-images.*(truncated|corrupt|empty)", images=(
        bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") + (2**31).to_bytes(4, "big") + (4).to_bytes(4, "big")
        + b"\x00" * 16))),
    ("idx_zero_dimension", "data", lambda e: _fmnist(e, r"empty dimension", images=(
        bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")))),
    ("idx_truncated", "data", lambda e: _fmnist(e, r"truncated", images=(
        bytes([0, 0, 8, 3]) + (60).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
        + b"\x00" * 100))),
    ("labels_one_class", "data", lambda e: _fmnist(e, r"every label is class 3",
                                                   labels=np.full(60, 3, dtype=np.uint8))),
    ("data_dir_missing", "data", lambda e: (["search", "--data", "fashion-mnist", "--data-dir", str(e.tmp / "no"),
                                             "--no-teacher", "--run-dir", str(e.tmp / "r")], r"no", [e.tmp / "r"])),
    # --- teacher files ---------------------------------------------------------------------------
    ("teacher_json_binary", "teacher", lambda e: _teacher_json(e, b"\x89\xff\x00garbage", r"teacher.json: cannot")),
    ("teacher_json_not_object", "teacher", lambda e: _teacher_json(e, b"[1]", r"teacher.json: must hold")),
    ("teacher_in_channels_string", "teacher", lambda e: _teacher_json(
        e, lambda m: m.update(in_channels="1"), r"in_channels must be a positive integer")),
    ("teacher_width_null", "teacher", lambda e: _teacher_json(e, lambda m: m.update(width=None),
                                                              r"width must be a number")),
    ("teacher_input_size_float", "teacher", lambda e: _teacher_json(e, lambda m: m.update(input_size=8.5),
                                                                    r"input_size must be a positive integer")),
    ("teacher_random_pt", "teacher", lambda e: ((e.tmp / "t.pt").write_bytes(np.random.default_rng(0).bytes(500))
                                                and None) or _with(_search(e, "--teacher", str(e.tmp / "t.pt"),
                                                                           "--set", "teacher.arch=small_cnn"),
                                                                   r"is not a PyTorch checkpoint")),
    ("teacher_weights_without_arch", "teacher", lambda e: (shutil.copy(e.teacher / "weights.safetensors",
                                                                       e.tmp / "w.safetensors") and None) or _with(
        _search(e, "--teacher", str(e.tmp / "w.safetensors")), r"teacher.arch")),
    ("teacher_missing", "teacher", lambda e: _with(_search(e, "--teacher", str(e.tmp / "none")), r"teacher.path")),
    # --- export ----------------------------------------------------------------------------------
    ("export_onto_a_file", "export", _export_onto_file),
    ("export_into_non_empty_folder", "export", _export_nonempty),
    ("export_deleted_weights", "export", _export_missing_weights),
    ("export_candidate_not_int", "export", lambda e: (["export", str(e.run), "--candidate", "first", "--out",
                                                       str(e.tmp / "o")], r"--candidate", [e.tmp / "o"])),
    ("export_candidate_unknown", "export", lambda e: (["export", str(e.run), "--candidate", "999", "--out",
                                                       str(e.tmp / "o")], r"999", [e.tmp / "o"])),
    ("export_of_no_run", "export", lambda e: (["export", str(e.tmp / "x"), "--out", str(e.tmp / "o")],
                                              r"holds no run", [e.tmp / "o"])),
    # --- evaluate --------------------------------------------------------------------------------
    ("evaluate_bad_json", "evaluate", lambda e: _bundle(e, lambda b: (b / "genome.json").write_text("{oops"),
                                                        r"genome.json: not valid JSON")),
    ("evaluate_truncated_weights", "evaluate", lambda e: _bundle(
        e, lambda b: (b / "weights.safetensors").write_bytes((b / "weights.safetensors").read_bytes()[:50]),
        r"weights.safetensors cannot be read|changed since export")),
    ("evaluate_width_changed", "evaluate", lambda e: _bundle(e, _genome_edit(**{"stage0.width": 999}),
                                                             r"changed since export|do not fit")),
    ("evaluate_kernel_changed", "evaluate", lambda e: _bundle(e, _genome_edit(**{"stage0.kernel": 7}),
                                                              r"changed since export|do not fit")),
    ("evaluate_classes_changed", "evaluate", lambda e: _bundle(e, _genome_edit(num_classes=3),
                                                               r"changed since export|do not fit")),
    ("evaluate_stage_dropped", "evaluate", lambda e: _bundle(e, _genome_edit(drop_stage=True),
                                                             r"changed since export|do not fit")),
    ("evaluate_activation_changed", "evaluate", lambda e: _bundle(e, _genome_edit(**{"stage0.activation": "gelu"}),
                                                                  r"changed since export")),
    ("evaluate_nan_weights", "evaluate", lambda e: _bundle(e, _nan_weights, r"changed since export|NaN")),
    ("evaluate_not_a_bundle", "evaluate", lambda e: (["evaluate", str(e.tmp), "--data", "digits"],
                                                     r"not an exported student", [])),
    # --- the other commands ----------------------------------------------------------------------
    ("grow_interval_zero", "other commands", lambda e: (["grow", "--data", "digits", "--no-teacher", "--set",
                                                         "growth.grow_every=0", "--run-dir", str(e.tmp / "g")],
                                                        r"growth.grow_every", [e.tmp / "g"])),
    ("grow_config_folder", "other commands", lambda e: (["grow", "--config", str(e.tmp), "--run-dir",
                                                         str(e.tmp / "g")], r"config: .* is a folder", [e.tmp / "g"])),
    ("grow_unknown_controller", "other commands", lambda e: (["grow", "--data", "digits", "--no-teacher",
                                                              "--controller", "oracle", "--run-dir", str(e.tmp / "g")],
                                                             r"controller.name", [e.tmp / "g"])),
    ("weights_unknown_strategy", "other commands", lambda e: (["evolve-weights", "--strategy", "pso", "--run-dir",
                                                               str(e.tmp / "w")], r"strategy", [e.tmp / "w"])),
    ("weights_population_1", "other commands", lambda e: (["evolve-weights", "--population", "1", "--run-dir",
                                                           str(e.tmp / "w")], r"population", [e.tmp / "w"])),
    ("weights_bad_param", "other commands", lambda e: (["evolve-weights", "--set", "params.F=5", "--run-dir",
                                                        str(e.tmp / "w")], r"params.F", [e.tmp / "w"])),
    ("prune_missing_teacher", "other commands", lambda e: (["prune", "--teacher", str(e.tmp / "none"), "--data",
                                                            "digits", "--run-dir", str(e.tmp / "p")],
                                                           r"teacher", [e.tmp / "p"])),
    ("teacher_train_unknown_arch", "other commands", lambda e: (["teacher", "train", "--arch", "vgg99", "--data",
                                                                 "digits", "--out", str(e.tmp / "t")],
                                                                r"--arch: unknown teacher", [e.tmp / "t"])),
    ("distill_missing_genome", "other commands", lambda e: (["distill", "--genome", str(e.tmp / "g.json")],
                                                            r"--genome: .* does not exist", [])),
    ("dashboard_missing_run", "other commands", lambda e: (["dashboard", str(e.tmp / "none"), "--no-open"],
                                                           r"holds no run", [])),
    ("report_missing_run", "other commands", lambda e: (["report", str(e.tmp / "none")], r"holds no run",
                                                        [e.tmp / "none"])),
]


@pytest.mark.parametrize("case_id, kind, build", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_it(case_id: str, kind: str, build: Callable[[Env], Case], shared: dict,
                                     tmp_path: Path) -> None:
    env = Env(tmp_path, shared["run"], shared["bundle"], shared["teacher"])
    def files() -> dict[Path, int]:  # SQLite's -shm/-wal change under any reader; the rest must not
        return {p: p.stat().st_mtime_ns for p in shared["run"].rglob("*")
                if p.is_file() and not p.name.endswith(("-shm", "-wal"))}

    before = files()
    args, pattern, must_not_exist = build(env)
    res = runner.invoke(app, args)
    out = res.output
    assert res.exit_code == 2, f"{case_id}: exit {res.exit_code}\n{out}\n{res.exception!r}"
    assert "Traceback" not in out, f"{case_id}: a traceback\n{out}"
    assert res.exception is None or isinstance(res.exception, SystemExit), f"{case_id}: {res.exception!r}"
    if pattern:
        assert re.search(pattern, " ".join(out.split())), f"{case_id}: {pattern!r} not in\n{out}"
    for p in must_not_exist:
        assert not p.exists(), f"{case_id}: {p} was left behind"
    assert files() == before, f"{case_id}: the shared run was changed"  # nothing already computed is touched


def test_battery_table() -> None:
    """The battery's size per kind (printed for the closing note)."""
    counts = Counter(kind for _, kind, _ in CASES)
    print("\nbad-input battery: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
          + f"; {len(CASES)} cases")
    assert sum(counts.values()) == len(CASES) >= 50
