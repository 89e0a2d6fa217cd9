"""What every evaluation needs, in a picklable form: paths to prepared arrays and cached teacher
outputs, the training recipe and the objectives. Workers load the arrays once per process."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evofusion.data.base import DataSplits
from evofusion.store.atomic import atomic_write_json


def cache_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("EVOFUSION_CACHE") or Path.home() / ".cache" / "evofusion")


def prepare_arrays(splits: DataSplits, root: Path) -> Path:
    """Write the splits as .npy files once per data fingerprint; return their folder."""
    d = root / "data" / f"{splits.name}-{splits.fingerprint()}"
    if (d / "meta.json").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    for part in ("train", "val", "test"):
        ds = getattr(splits, part)
        for arr, kind in ((ds.x, "x"), (ds.y, "y")):
            tmp = d / f".{part}_{kind}.tmp.npy"
            np.save(tmp, np.ascontiguousarray(arr))
            os.replace(tmp, d / f"{part}_{kind}.npy")
    atomic_write_json(d / "meta.json", {"name": splits.name, "num_classes": splits.num_classes,
                                        "fingerprint": splits.fingerprint()})
    return d


@dataclass(frozen=True)
class EvalContext:
    data_dir: str
    teacher_dir: str | None
    train: dict[str, Any]  # TrainConfig fields
    objectives: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    measure_latency: bool = False
    latency_threads: int = 1
    threads: int = 0  # torch threads inside an evaluation; 0 = leave as is
    inherit_weights: bool = True
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    extra: dict[str, Any] = field(default_factory=dict)
    custom_objectives: dict[str, dict[str, Any]] = field(default_factory=dict)  # objectives.custom specs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=4)
def load_arrays(data_dir: str, teacher_dir: str | None) -> dict[str, torch.Tensor]:
    """Tensors of the prepared splits (and teacher logits), loaded once per process."""
    d = Path(data_dir)
    out = {f"{p}_{k}": torch.from_numpy(np.load(d / f"{p}_{k}.npy")) for p in ("train", "val", "test")
           for k in ("x", "y")}
    if teacher_dir is not None:
        t = Path(teacher_dir)
        out["train_t"] = torch.from_numpy(np.array(np.load(t / "train.npy", mmap_mode="r")))
    meta = json.loads((d / "meta.json").read_text())
    out["num_classes"] = torch.tensor(meta["num_classes"])
    return out
