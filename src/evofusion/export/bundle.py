"""Export a student as genome JSON + safetensors, and load it back as a plain nn.Module in one call."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from evofusion.errors import EvoFusionError
from evofusion.genome import build, genome_from_dict
from evofusion.store.atomic import atomic_write_json


def export_student(genome: dict[str, Any], weights_file: str | Path, out_dir: str | Path,
                   card: dict[str, Any] | None = None) -> Path:
    """Write ``genome.json``, ``weights.safetensors`` and ``card.json`` (metrics, lineage) to out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights_file, out / "weights.safetensors")
    atomic_write_json(out / "genome.json", genome)
    atomic_write_json(out / "card.json", card or {})
    return out


def load_student(path: str | Path) -> nn.Module:
    """Rebuild an exported student: ``model = evofusion.load_student("out/")`` (eval mode)."""
    p = Path(path)
    if not (p / "genome.json").exists() or not (p / "weights.safetensors").exists():
        raise EvoFusionError(f"{p} is not an exported student (needs genome.json and weights.safetensors)")
    model = build(genome_from_dict(json.loads((p / "genome.json").read_text())))
    model.load_state_dict(load_file(str(p / "weights.safetensors")))
    return model.eval()
