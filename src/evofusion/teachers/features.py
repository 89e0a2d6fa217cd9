"""Named feature taps on any ``nn.Module`` teacher, and a cache of reduced teacher features.

A teacher tap is a dotted submodule name from ``named_modules()`` (``features.conv4``, ``layer3``,
``pool``); by default it reads the module's output, with the suffix ``:in`` its (first) input
(``classifier:in`` is the penultimate vector of most classifiers). Taps are read with forward hooks,
so any module works, zoo or not.

Feature KD from a cached teacher costs about what logit KD costs only if the cached features are
small, so every tap is stored *reduced* (``TeacherTap.reduce``):

* ``pool``: feature maps adaptive-average-pooled to ``size x size`` (vectors are kept as they are);
* ``attention``: the attention map of Zagoruyko & Komodakis (2017), ``mean_c(f^2)``, computed at full
  resolution and then pooled to ``size x size`` (one channel);
* ``gap``: global average pool to a vector.

Layout mirrors :class:`~evofusion.teachers.cache.TeacherCache`: ``<root>/<key>/{train,val,test}.npy``
(float16, one row per example in split order) and ``meta.json`` written last; ``key`` hashes the
teacher weights, the data fingerprint and the tap with its reduction.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evofusion.data.base import DataSplits
from evofusion.errors import TeacherError
from evofusion.teachers.cache import SPLITS, cache_key, default_cache_root
from evofusion.teachers.teacher import Teacher, atomic_write_bytes

REDUCTIONS = ("pool", "attention", "gap")


@dataclass(frozen=True)
class TeacherTap:
    """One teacher feature to cache: ``tap`` (module name, optional ``:in``), its reduction and size."""

    tap: str
    reduce: str = "pool"  # pool | attention | gap
    size: int = 4  # [1, 64] side of the cached map (pool, attention)

    def __post_init__(self) -> None:
        if not isinstance(self.tap, str) or not self.tap.split(":")[0]:
            raise TeacherError(f"teacher_tap must be a module name, got {self.tap!r}")
        if self.reduce not in REDUCTIONS:
            raise TeacherError(f"teacher tap reduce must be one of {', '.join(REDUCTIONS)}, got {self.reduce!r}")
        if not 1 <= self.size <= 64:
            raise TeacherError(f"teacher tap size must be in [1, 64], got {self.size!r}")

    @property
    def id(self) -> str:
        return f"feature:{self.tap}:{self.reduce}:{self.size}"


def split_tap(tap: str) -> tuple[str, str]:
    """``"name:in"`` -> ``("name", "in")``; ``"name"`` -> ``("name", "out")``."""
    name, _, where = tap.partition(":")
    if where not in ("", "in", "out"):
        raise TeacherError(f"tap {tap!r}: the suffix after ':' must be 'in' or 'out'")
    return name, where or "out"


def find_module(module: nn.Module, name: str, what: str = "teacher") -> nn.Module:
    """``module``'s submodule called ``name``; TeacherError listing valid names when there is none."""
    mods = dict(module.named_modules())
    if name not in mods:
        valid = [n for n in mods if n]
        shown = ", ".join(valid[:40]) + (" ..." if len(valid) > 40 else "")
        raise TeacherError(f"{what} has no module {name!r}; valid taps: {shown}")
    return mods[name]


@contextlib.contextmanager
def capture(module: nn.Module, taps: dict[str, tuple[str, str]], what: str = "teacher") -> Iterator[dict[str, Any]]:
    """Record features during the forward passes inside the ``with`` block.

    Args:
        taps: key -> (module name, "out" | "in"); the yielded dict maps key -> the latest tensor.
    """
    found: dict[str, Any] = {}
    handles = []
    for key, (name, where) in taps.items():
        sub = find_module(module, name, what)
        if where == "in":
            def pre(_m: nn.Module, args: tuple[Any, ...], key: str = key) -> None:
                found[key] = args[0]
            handles.append(sub.register_forward_pre_hook(pre))
        else:
            def post(_m: nn.Module, _a: tuple[Any, ...], out: Any, key: str = key) -> None:
                found[key] = out
            handles.append(sub.register_forward_hook(post))
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def attention_map(f: torch.Tensor) -> torch.Tensor:
    """``mean_c(f^2)`` of a ``(N, C, H, W)`` map as ``(N, 1, H, W)`` (Zagoruyko & Komodakis, 2017)."""
    return f.float().pow(2).mean(1, keepdim=True)


def reduce_feature(f: torch.Tensor, reduce: str, size: int) -> torch.Tensor:
    """Apply a :class:`TeacherTap` reduction to one batch of features."""
    f = f.float()
    if f.ndim == 4:
        if reduce == "gap":
            return f.mean((2, 3))
        if reduce == "attention":
            f = attention_map(f)
        return F.adaptive_avg_pool2d(f, (min(size, f.shape[2]), min(size, f.shape[3])))
    if f.ndim == 2 or reduce == "pool":
        return f.flatten(1) if f.ndim > 2 else f
    raise TeacherError(f"cannot reduce a feature of shape {tuple(f.shape)} with {reduce!r} (needs a (N, C, H, W) map)")


@torch.no_grad()
def teacher_features(teacher: Teacher, x: torch.Tensor | np.ndarray, taps: Sequence[TeacherTap],
                     batch_size: int = 512) -> list[torch.Tensor]:
    """Reduced features of every tap for all of ``x`` (one teacher pass), float32 CPU tensors."""
    module = teacher.module
    if module is None:
        raise TeacherError(f"teacher '{teacher.name}' is a plain callable: feature taps need an nn.Module teacher")
    xt = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    spec = {str(i): split_tap(t.tap) for i, t in enumerate(taps)}
    outs: list[list[torch.Tensor]] = [[] for _ in taps]
    with capture(module, spec) as found:
        for i in range(0, len(xt), batch_size):
            found.clear()
            teacher(xt[i:i + batch_size])
            for j, t in enumerate(taps):
                f = found.get(str(j))
                if not isinstance(f, torch.Tensor):
                    raise TeacherError(f"teacher tap {t.tap!r} did not produce a tensor in the forward pass")
                outs[j].append(reduce_feature(f, t.reduce, t.size).cpu())
    return [torch.cat(o) if o else torch.empty(0) for o in outs]


class FeatureCache:
    """Reduced teacher features per (teacher weights, data, tap), computed once and memory-mapped."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    def key(self, teacher: Teacher, splits: DataSplits, tap: TeacherTap) -> str:
        return cache_key(teacher.weights_hash, splits.fingerprint(), tap.id)

    def get(self, teacher: Teacher, splits: DataSplits, taps: Sequence[TeacherTap],
            batch_size: int = 512) -> list[Path]:
        """Cache directories of every tap (``<dir>/train.npy`` etc.); missing ones are computed in
        one teacher pass over each split."""
        dirs = [self.root / self.key(teacher, splits, t) for t in taps]
        todo = [i for i, d in enumerate(dirs) if not _complete(d, splits)]
        self.hits += len(taps) - len(todo)
        if not todo:
            return dirs
        self.misses += len(todo)
        t0 = time.perf_counter()
        parts: dict[str, list[torch.Tensor]] = {}
        for split in SPLITS:
            part = getattr(splits, split)
            parts[split] = teacher_features(teacher, part.x, [taps[i] for i in todo], batch_size) \
                if len(part) else [torch.empty(0)] * len(todo)
        for k, i in enumerate(todo):
            d = dirs[i]
            d.mkdir(parents=True, exist_ok=True)
            shape: list[int] = []
            for split in SPLITS:
                arr = parts[split][k].numpy().astype(np.float16)
                if len(arr) and not np.isfinite(arr).all():
                    raise TeacherError(f"teacher '{teacher.name}' tap {taps[i].tap!r}: non-finite features "
                                       f"on the {split} split (or beyond float16 range)")
                if len(arr):
                    shape = list(arr.shape[1:])
                buf = io.BytesIO()
                np.save(buf, arr)
                atomic_write_bytes(d / f"{split}.npy", buf.getvalue())
            meta = {"key": d.name, "teacher": teacher.name, "weights_hash": teacher.weights_hash,
                    "data": splits.name, "data_fingerprint": splits.fingerprint(), "tap": taps[i].tap,
                    "reduce": taps[i].reduce, "size": taps[i].size, "shape": shape,
                    "rows": {s: len(getattr(splits, s)) for s in SPLITS}, "seconds": time.perf_counter() - t0}
            atomic_write_bytes(d / "meta.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        return dirs


def _complete(d: Path, splits: DataSplits) -> bool:
    if not (d / "meta.json").is_file():
        return False
    try:
        for s in SPLITS:
            if np.load(d / f"{s}.npy", mmap_mode="r").shape[0] != len(getattr(splits, s)):
                return False
    except (OSError, ValueError):
        return False
    return True


def load_features(d: str | Path, split: str = "train") -> np.ndarray:
    """The cached features of one split as a read-only float16 memmap."""
    return np.load(Path(d) / f"{split}.npy", mmap_mode="r")
