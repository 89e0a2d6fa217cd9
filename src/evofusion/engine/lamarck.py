"""How a candidate starts: Lamarckian inheritance and multi-fidelity continuation.

* ``continue``: a promoted candidate (same genome) resumes from its saved weights *and* optimizer
  state (AdamW moments, step counts), so a rung adds training instead of restarting it.
* ``morph``: a child made by an exactly function-preserving operator (``fp_widen``, ``fp_deepen`` ...,
  ``preserves_function = True``) gets its weights through that operator's exact transfer
  (:func:`evofusion.operators.morph.morph`), so it starts with its parent's function (logits equal
  to 1e-5 before training), and its optimizer moments mapped the same way; it then continues the
  parent's training (the store adds the parent lineage's steps).
* ``inherit``: every other child starts from the overlap copy of its first parent's weights
  (:mod:`evofusion.engine.inherit`) with a fresh optimizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from evofusion.engine.inherit import inherit_weights

OPTIMIZER_SUFFIX = ".optim.safetensors"


def optimizer_path(weights_file: str | Path) -> Path:
    """Where a candidate's optimizer state lies beside its weights (``weights/7.optim.safetensors``)."""
    p = Path(weights_file)
    return p.with_name(p.name.removesuffix(".safetensors") + OPTIMIZER_SUFFIX)


def _optimizer_state(path: str | None) -> dict[str, torch.Tensor] | None:
    return load_file(path) if path and Path(path).exists() else None


def start_model(job: Any, genome: Any, model: nn.Module, info: dict[str, Any]
                ) -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    """The model a job trains and the optimizer state it continues from (None: fresh)."""
    ctx = job.context
    parent = job.parent_weights if job.parent_weights and Path(job.parent_weights).exists() else None
    if parent is None or not ctx.inherit_weights:
        return model, None
    if job.start == "continue":
        model.load_state_dict(load_file(parent), strict=True)
        info["started"] = "continue"
        return model, _optimizer_state(job.parent_optimizer)
    if job.start == "morph" and job.morph is not None:
        return _morph_start(job, genome, info, parent)
    info["inherited"] = inherit_weights(model, load_file(parent))
    return model, None


def _morph_start(job: Any, genome: Any, info: dict[str, Any], parent_weights: str
                 ) -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    from evofusion.distill.loop import TrainConfig, load_optimizer_tensors, make_optimizer, optimizer_tensors
    from evofusion.genome import build, genome_from_dict
    from evofusion.genome.space import SearchSpace
    from evofusion.growth.trainer import carry_optimizer
    from evofusion.operators import create_operator
    from evofusion.operators.morph import morph

    m = job.morph
    parent_genome = genome_from_dict(m["parent_genome"])
    parent = build(parent_genome)
    parent.load_state_dict(load_file(parent_weights), strict=True)
    g = parent_genome.to_student()
    op = create_operator(m["operator"], SearchSpace(in_channels=g.in_channels, input_size=g.input_size,
                                                    num_classes=g.num_classes))
    rng = np.random.default_rng(job.seed)
    res = morph(op, parent, genome.to_student(), m["info"], rng)  # type: ignore[arg-type]
    info["started"] = f"morph:{m['operator']}"
    state = _optimizer_state(job.parent_optimizer)
    if not state:
        return res.model, None
    cfg = TrainConfig(**job.context.train)
    parent_opt = make_optimizer(parent, cfg)
    load_optimizer_tensors(parent, parent_opt, state)
    child_opt = carry_optimizer(res.plan, parent, parent_opt, res.model, cfg)
    return res.model, optimizer_tensors(res.model, child_opt)
