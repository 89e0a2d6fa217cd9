"""Genome JSON I/O for every genome kind."""

from __future__ import annotations

import json
from typing import Any

from evofusion.errors import GenomeError
from evofusion.genome.chromosome import ChromosomeGenome
from evofusion.genome.prune import PruneGenome
from evofusion.genome.spec import StudentGenome

GENOME_KINDS = {"student": StudentGenome, "chromosome": ChromosomeGenome, "prune": PruneGenome}


def genome_from_dict(d: dict[str, Any]) -> StudentGenome | ChromosomeGenome | PruneGenome:
    kind = d.get("kind", "student") if isinstance(d, dict) else None
    if kind not in GENOME_KINDS:
        raise GenomeError("kind", f"unknown genome kind {kind!r}; valid: {', '.join(GENOME_KINDS)}")
    try:
        return GENOME_KINDS[kind].from_dict(d)
    except TypeError as e:  # wrong field types reaching the dataclass
        raise GenomeError("genome", str(e)) from e


def genome_from_json(text: str) -> StudentGenome | ChromosomeGenome | PruneGenome:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenomeError("genome", f"not valid JSON: {e}") from e
    return genome_from_dict(d)
