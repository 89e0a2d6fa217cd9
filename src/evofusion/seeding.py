"""Seeds from keys, and seeded module construction, in one place.

Every seed in a run derives from the run seed and fixed keys (``derive_seed(run_seed, candidate_id)``),
never from a process or a clock, so a candidate evaluates the same on any worker and after a resume.
``torch_seeded(seed)`` runs a block (typically ``build(genome)``) with torch's global generator
seeded, and restores the caller's generator state afterwards, so building never disturbs it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (``np.random.SeedSequence``): the same keys, the same seed."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


@contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded with ``seed``; restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def generator_state_to_str(generator: torch.Generator) -> str:
    """A torch generator's state as base64 text (JSON-ready, for checkpoints)."""
    return base64.b64encode(generator.get_state().numpy().tobytes()).decode("ascii")


def generator_state_from_str(generator: torch.Generator, text: str) -> None:
    """Restore ``generator_state_to_str``'s text into ``generator``."""
    raw = bytearray(base64.b64decode(text.encode("ascii")))
    generator.set_state(torch.frombuffer(raw, dtype=torch.uint8).clone())
