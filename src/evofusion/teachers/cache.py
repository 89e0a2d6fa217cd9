"""``TeacherCache``: teacher outputs computed once per (teacher weights, data, input transform) and
memory-mapped by every candidate afterwards.

Layout: ``<root>/<key>/{train,val,test}.npy`` (float32 logits, one row per example, in split order)
and ``<root>/<key>/meta.json``. Every file is written through a temporary file and ``os.replace``,
and ``meta.json`` is written last: a directory without it is incomplete and is recomputed, so a
process killed mid-write never leaves a half cache that later runs trust.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evofusion.data.base import DataSplits
from evofusion.errors import TeacherError
from evofusion.teachers.teacher import Teacher, atomic_write_bytes

SPLITS = ("train", "val", "test")
META_FILE = "meta.json"


def default_cache_root() -> Path:
    """``$EVOFUSION_CACHE/teachers`` if the variable is set, else ``~/.cache/evofusion/teachers``."""
    base = os.environ.get("EVOFUSION_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "evofusion") / "teachers"


def cache_key(weights_hash: str, data_fingerprint: str, transform_id: str) -> str:
    """First 16 hex digits of sha256 over the three identities (newline separated)."""
    return hashlib.sha256(f"{weights_hash}\n{data_fingerprint}\n{transform_id}".encode()).hexdigest()[:16]


@dataclass
class CachedOutputs:
    """Teacher logits for one (teacher, data, transform): read-only ``np.memmap`` float32 arrays of
    shape ``(len(split), num_classes)`` aligned row by row with ``splits.train`` / ``val`` / ``test``.

    ``computed`` is True when this call ran the teacher, False when the outputs came from disk.
    """

    key: str
    dir: Path
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    computed: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, split: str) -> torch.Tensor:
        """A writable float32 tensor copy of one split's logits (for ``distill.train``)."""
        if split not in SPLITS:
            raise KeyError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
        return torch.from_numpy(np.array(getattr(self, split), dtype=np.float32))


class TeacherCache:
    """Computes teacher outputs once and serves them memory-mapped afterwards.

    Counters ``hits`` (served from disk) and ``misses`` (teacher ran) count this instance's calls.
    Concurrent processes computing the same key race harmlessly: they write identical contents,
    each through its own temporary files.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    def key(self, teacher: Teacher, splits: DataSplits, transform_id: str = "none") -> str:
        """The cache key of (teacher, splits, transform_id); see :func:`cache_key`."""
        return cache_key(teacher.weights_hash, splits.fingerprint(), transform_id)

    def get(self, teacher: Teacher, splits: DataSplits, transform_id: str = "none", *,
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
            batch_size: int = 1024) -> CachedOutputs:
        """Teacher logits for every split of ``splits``, computed on the first call for this key.

        Args:
            teacher: its ``weights_hash`` is part of the key.
            splits: its ``fingerprint()`` is part of the key.
            transform_id: names the input transform applied before the teacher ("none" = inputs as
                given); part of the key.
            transform: the transform itself, applied to every batch; must come with a
                ``transform_id`` other than "none" so different transforms never share outputs.
            batch_size: rows per teacher call when computing.

        Raises:
            TeacherError: the teacher has no identity, a transform without an id was given, or the
                teacher's outputs do not fit the data (wrong shape, non-finite values).
        """
        if transform is not None and transform_id == "none":
            raise TeacherError("TeacherCache.get: a transform needs a transform_id naming it, or outputs of "
                               "different transforms would share one cache entry")
        key = self.key(teacher, splits, transform_id)
        d = self.root / key
        loaded = self._load(d, key, splits)
        if loaded is not None:
            self.hits += 1
            return loaded
        self.misses += 1
        outputs = getattr(teacher, "outputs", None)  # a PrecomputedTeacher: its file, checked
        if outputs is not None:
            if transform is not None:
                raise TeacherError(f"teacher '{teacher.name}' is precomputed outputs: it cannot score "
                                   "transformed inputs")
            if teacher.fingerprint != splits.fingerprint():  # type: ignore[attr-defined]
                raise TeacherError(f"teacher outputs '{teacher.name}' were computed for data with fingerprint "
                                   f"{teacher.fingerprint} ({teacher.meta.get('data', '?')}), these data have "  # type: ignore[attr-defined]
                                   f"{splits.fingerprint()} ({splits.name}): recompute them on the same data "
                                   "set, limit, val_fraction and seed")
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        for split in SPLITS:
            part = getattr(splits, split)
            if outputs is not None:
                logits = outputs[split]
            elif len(part) == 0:
                logits = np.zeros((0, splits.num_classes), dtype=np.float32)
            else:
                logits = teacher.predict(part.x, batch_size=batch_size, transform=transform).numpy()
            _check_logits(logits, len(part), splits.num_classes, split, teacher)
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(logits, dtype=np.float32))
            atomic_write_bytes(d / f"{split}.npy", buf.getvalue())
        meta = {
            "key": key,
            "teacher": teacher.name,
            "weights_hash": teacher.weights_hash,
            "data": splits.name,
            "data_fingerprint": splits.fingerprint(),
            "transform_id": transform_id,
            "num_classes": splits.num_classes,
            "rows": {s: len(getattr(splits, s)) for s in SPLITS},
            "seconds": time.perf_counter() - t0,
        }
        atomic_write_bytes(d / META_FILE, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        out = self._load(d, key, splits)
        if out is None:  # pragma: no cover - only if another process deletes the entry meanwhile
            raise TeacherError(f"{d}: cache entry vanished right after it was written")
        out.computed = True
        return out

    def _load(self, d: Path, key: str, splits: DataSplits) -> CachedOutputs | None:
        """The complete entry at ``d``, or None when it is missing, incomplete or does not fit."""
        meta_path = d / META_FILE
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            arrays = {s: np.load(d / f"{s}.npy", mmap_mode="r") for s in SPLITS}
        except (OSError, ValueError):
            return None
        for s in SPLITS:
            a = arrays[s]
            if a.dtype != np.float32 or a.ndim != 2 or a.shape[0] != len(getattr(splits, s)):
                return None
        return CachedOutputs(key=key, dir=d, computed=False, meta=meta, **arrays)


def _check_logits(logits: np.ndarray, rows: int, num_classes: int, split: str, teacher: Teacher) -> None:
    if logits.ndim != 2 or logits.shape[0] != rows:
        raise TeacherError(f"teacher '{teacher.name}' returned shape {logits.shape} on the {split} split; "
                           f"expected ({rows}, num_classes)")
    if logits.shape[1] != num_classes:
        raise TeacherError(f"teacher '{teacher.name}' outputs {logits.shape[1]} classes but the data has "
                           f"{num_classes}")
    if not np.isfinite(logits).all():
        raise TeacherError(f"teacher '{teacher.name}' returned non-finite logits on the {split} split")
