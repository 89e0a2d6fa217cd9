"""The one way a run writes weights: safetensors, atomically, with one content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from evofusion.store.atomic import atomic_write_bytes


def cpu_state(module_or_state: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) else module_or_state
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def state_hash(state: Mapping[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names and tensor bytes, in name order): 16 hex digits."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_weights(module_or_state: torch.nn.Module | Mapping[str, torch.Tensor], path: str | Path) -> str:
    """Save a module's (or a state dict's) tensors as safetensors atomically; return ``state_hash``."""
    state = cpu_state(module_or_state)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, st_save(state))
    return state_hash(state)

