"""Export a student as genome JSON + safetensors, and load it back as a plain nn.Module in one call.

A bundle is written exactly or not at all: the genome is built and the weights loaded into it
(strictly) before anything is written, the files go to a temporary folder next to the target, and
that folder is renamed into place. A target that exists is refused unless ``force`` (then it is
replaced whole: no stale ``student.onnx`` of another candidate survives). ``card.json`` holds
``bundle_sha256``, a hash of the genome JSON and the weights' bytes, which ``load_student`` checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from torch import nn

from evofusion.errors import EvoFusionError
from evofusion.genome import build, genome_from_dict
from evofusion.store.atomic import atomic_write_json, public_mode


def bundle_hash(genome: dict[str, Any], weights: bytes) -> str:
    """sha256 of the canonical genome JSON and the weights file's bytes."""
    h = hashlib.sha256(json.dumps(genome, sort_keys=True).encode())
    h.update(weights)
    return h.hexdigest()


def _model_from(genome: dict[str, Any], weights: bytes, where: str) -> nn.Module:
    """The genome's module with the weights loaded strictly; EvoFusionError naming what does not fit."""
    try:
        model = build(genome_from_dict(genome))
    except (EvoFusionError, ValueError, TypeError, KeyError) as e:
        raise EvoFusionError(f"{where}: genome.json does not describe a valid student ({e})") from None
    try:
        state = st_load(weights)
    except (SafetensorError, ValueError, OSError) as e:
        raise EvoFusionError(f"{where}: weights.safetensors cannot be read (truncated or not safetensors: "
                             f"{e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1:3] or [str(e)]
        raise EvoFusionError(f"{where}: the weights do not fit the genome (was genome.json edited, or the "
                             f"weights swapped?): {' '.join(s.strip() for s in first)}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise EvoFusionError(f"{where}: weights hold NaN or infinite values ({bad[0]} first); the student "
                             "diverged or the file is damaged")
    return model


def export_student(genome: dict[str, Any], weights_file: str | Path, out_dir: str | Path,
                   card: dict[str, Any] | None = None, *, force: bool = False,
                   extra: Callable[[Path, dict[str, Any]], None] | None = None) -> Path:
    """Write ``genome.json``, ``weights.safetensors`` and ``card.json`` (metrics, lineage) to ``out_dir``.

    ``extra(folder, card)`` may add files (e.g. ``student.onnx``) and card fields before the bundle is
    renamed into place. Raises EvoFusionError (nothing written) for a missing or unreadable weights
    file, weights that do not fit the genome, or an existing ``out_dir`` without ``force``.
    """
    out = Path(out_dir)
    src = Path(weights_file)
    if not src.is_file():
        raise EvoFusionError(f"the weights file {src} is missing; the run directory is incomplete")
    if out.exists() and not out.is_dir():
        raise EvoFusionError(f"--out: {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise EvoFusionError(f"--out: {out} is not empty; choose a new folder or pass --force to replace it")
    weights = src.read_bytes()
    _model_from(genome, weights, str(src))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    except OSError as e:
        raise EvoFusionError(f"--out: cannot write in {out.parent} ({e.strerror or e})") from None
    try:
        (tmp / "weights.safetensors").write_bytes(weights)
        atomic_write_json(tmp / "genome.json", genome)
        card = {**(card or {}), "bundle_sha256": bundle_hash(genome, weights)}
        if extra is not None:
            extra(tmp, card)
        atomic_write_json(tmp / "card.json", card)
        for f in tmp.iterdir():
            os.chmod(f, public_mode())
        os.chmod(tmp, public_mode(directory=True))
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_student(path: str | Path, verify: bool = True) -> nn.Module:
    """Rebuild an exported student: ``model = evofusion.load_student("out/")`` (eval mode).

    Raises EvoFusionError for a folder that is not a bundle, unreadable files, weights that do not fit
    the genome or hold NaN, and (``verify``) a genome or weights changed since export.
    """
    p = Path(path)
    if not (p / "genome.json").is_file() or not (p / "weights.safetensors").is_file():
        raise EvoFusionError(f"{p} is not an exported student (needs genome.json and weights.safetensors)")
    try:
        genome = json.loads((p / "genome.json").read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EvoFusionError(f"{p / 'genome.json'}: not valid JSON ({e})") from None
    weights = (p / "weights.safetensors").read_bytes()
    if verify and (p / "card.json").is_file():
        try:
            expected = json.loads((p / "card.json").read_text()).get("bundle_sha256")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise EvoFusionError(f"{p / 'card.json'}: not valid JSON") from None
        if expected is not None and expected != bundle_hash(genome, weights):
            raise EvoFusionError(f"{p}: genome.json or weights.safetensors changed since export (bundle hash "
                                 "mismatch); re-export the student, or load with verify=False")
    if not isinstance(genome, dict):
        raise EvoFusionError(f"{p / 'genome.json'}: must hold a JSON object")
    return _model_from(genome, weights, str(p)).eval()


__all__ = ["bundle_hash", "export_student", "load_student"]
