"""Export one candidate of a run directory: the bundle, the self-contained files and the card.

Used by ``evofusion export`` and ``Study.export``. The bundle is ``genome.json`` +
``weights.safetensors`` (the fine-tuned weights when the candidate was fine-tuned) + ``card.json``,
plus ``student.pt`` (TorchScript with the normalization inside) and, with ``onnx`` / ``int8``,
the parity-checked ONNX graphs measured on the run's data (:func:`evofusion.export.quantize.onnx_deployment`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evofusion.errors import EvoFusionError

UINT8_DATASETS = ("fashion-mnist", "mnist", "cifar10")  # stored as 8-bit pixels


def run_splits(store: Any, data_dir: str | None = None) -> Any:
    """The run's data splits, loaded as the run loaded them; refused when the fingerprint differs."""
    from evofusion.data import load_dataset

    cfg, meta = store.config(), store.get_meta("data")
    cfg = cfg.get("weights", cfg.get("grow", cfg)) if "data" not in cfg else cfg
    d = {"val_fraction": 0.1, "seed": 0, **cfg["data"]}
    splits = load_dataset(meta["name"], data_dir=data_dir or d.get("data_dir"), val_fraction=d["val_fraction"],
                          seed=d["seed"], limit=d.get("limit"))
    if splits.fingerprint() != meta["fingerprint"]:
        raise EvoFusionError(f"--data-dir: the data differ from the run's (fingerprint {splits.fingerprint()} "
                             f"vs {meta['fingerprint']}); point --data-dir at the run's {meta['name']} files")
    return splits


def normalization(store: Any, data: dict[str, Any], data_dir: str | None = None) -> dict[str, Any]:
    """Name, input shape, per-channel mean/std and classes of a run's data, and whether its images are
    8-bit: from the run's data record, else its teacher's card, else the data set itself."""
    meta = dict(store.get_meta("data") or {})
    teacher = data.get("teacher") or {}
    if "mean" not in meta and teacher.get("mean") is not None:
        meta.update(mean=teacher["mean"], std=teacher["std"])
    if "mean" not in meta:
        splits = run_splits(store, data_dir)
        meta.update(mean=list(splits.mean), std=list(splits.std), input_shape=[splits.in_channels,
                    splits.input_size, splits.input_size])
    if "input_shape" not in meta:
        g = next((c["genome"] for c in data["candidates"] if isinstance(c.get("genome"), dict)), {})
        meta["input_shape"] = [g.get("in_channels", 1), g.get("input_size", 28), g.get("input_size", 28)]
    meta["uint8"] = meta.get("name") in UINT8_DATASETS
    meta.setdefault("num_classes", 10)
    return meta


def _onnx_files(store: Any, path: Path, card: dict[str, Any], int8: bool, calibration: int,
                data_dir: str | None) -> None:
    """Add student.onnx (student.uint8.onnx, student.int8.onnx) to a bundle being written, measured on
    the run's data; the figures go into ``card`` (written by export_student after this)."""
    from evofusion.export import load_student
    from evofusion.export.quantize import onnx_deployment

    splits = run_splits(store, data_dir)
    cfg = store.config()
    cfg = cfg.get("weights", cfg.get("grow", cfg)) if "data" not in cfg else cfg
    threads = cfg.get("objectives", {}).get("latency_threads", 1)
    card["deployment"] = onnx_deployment(load_student(path), splits, path, int8=int8, calibration=calibration,
                                         threads=threads, seed=cfg["data"].get("seed", 0))


def export_candidate(store: Any, candidate_id: int | None, out_dir: str | Path, *, onnx: bool = False,
                     int8: bool = False, calibration: int = 512, data_dir: str | None = None,
                     force: bool = False) -> tuple[int, Path]:
    """Export candidate ``candidate_id`` (None: the run's best) of the run in ``store`` to ``out_dir``.

    Returns ``(candidate id, bundle path)``. Raises EvoFusionError (nothing written) for a candidate
    that is not COMPLETE, missing weights, a non-empty ``out_dir`` without ``force``, or data that
    differ from the run's.
    """
    from evofusion.export import export_student, load_student
    from evofusion.export.deploy import input_card, write_torchscript
    from evofusion.viz import report_data
    from evofusion.viz.report import lineage

    data = report_data(store)
    finals = {f["candidate_id"]: f for f in store.finals()}
    if candidate_id is None:
        if data["best"] is None:
            done = [c for c in data["candidates"] if c["status"] == "COMPLETE"]
            if not done:
                raise EvoFusionError(f"{store.dir} has no COMPLETE candidate to export")
            candidate_id = max(done, key=lambda c: c["objectives"]["accuracy"])["id"]
        else:
            candidate_id = data["best"]
    cid = int(candidate_id)  # type: ignore[arg-type]
    row = store.candidate(cid)
    if row is None or row["status"] != "COMPLETE":
        raise EvoFusionError(f"--candidate: {cid} is not a COMPLETE candidate of {store.dir}")
    fin = finals.get(cid)
    weights = store.resolve(fin["weights_file"] if fin else row["weights_file"])
    if weights is None or not weights.exists():
        raise EvoFusionError(f"--candidate: the weights of candidate {cid} are missing from {store.dir} "
                             f"({weights}); the run directory is incomplete")
    final = fin and {k: fin[k] for k in ("val_accuracy", "test_accuracy")}
    card = {"candidate_id": cid, "objectives": row["objective_values"], "parents": row["parents"],
            "operator": row["operator"], "generation": row["generation"], "teacher": data["teacher"],
            "data": data["data"], "final": final,
            "metrics": {"search": row["objective_values"], **({"final": final} if final else {})},
            "notes": "flops = 2 * macs (torch.utils.flop_counter counts a multiply-add as 2 FLOPs)",
            "lineage": [{"id": n["id"], "generation": n["generation"], "operator": n["operator"],
                         "parents": n["parents"]} for n in lineage(data["candidates"], cid)["nodes"]]}
    norm = normalization(store, data, data_dir)

    def deploy(folder: Path, c: dict[str, Any]) -> None:  # the self-contained files beside the bundle
        c.update(input_card(norm["name"], norm["input_shape"], norm["mean"], norm["std"], norm["uint8"],
                            norm["num_classes"]))
        c["torchscript"] = write_torchscript(load_student(folder), norm["mean"], norm["std"],
                                             norm["input_shape"], folder / "student.pt")
        if onnx or int8:
            _onnx_files(store, folder, c, int8, calibration, data_dir)

    return cid, export_student(row["genome"], weights, out_dir, card, force=force, extra=deploy)


__all__ = ["export_candidate", "normalization", "run_splits"]
