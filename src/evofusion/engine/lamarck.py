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

from evofusion.distill.loop import MOMENTS, TrainConfig, make_optimizer
from evofusion.engine.inherit import inherit_weights
from evofusion.operators.morph import Plan, apply_plan

OPTIMIZER_SUFFIX = ".optim.safetensors"


def optimizer_path(weights_file: str | Path) -> Path:
    """Where a candidate's optimizer state lies beside its weights (``weights/7.optim.safetensors``)."""
    p = Path(weights_file)
    return p.with_name(p.name.removesuffix(".safetensors") + OPTIMIZER_SUFFIX)


def load_optimizer_file(path: str | None) -> dict[str, torch.Tensor] | None:
    """The optimizer state saved beside a candidate's weights (None when there is none)."""
    return load_file(path) if path and Path(path).exists() else None


def start_model(job: Any, genome: Any, model: nn.Module, info: dict[str, Any]
                ) -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    """The model a job trains and the optimizer state it continues from (None: fresh)."""
    ctx = job.context
    parent = job.parent_weights if job.parent_weights and Path(job.parent_weights).exists() else None
    # a continuation is the same candidate trained further, not inheritance: it always starts from its row
    if parent is None or (not ctx.inherit_weights and job.start != "continue"):
        return model, None
    if job.start == "continue":
        model.load_state_dict(load_file(parent), strict=True)
        info["started"] = "continue"
        return model, load_optimizer_file(job.parent_optimizer)
    if job.start == "morph" and job.morph is not None:
        return _morph_start(job, genome, info, parent)
    info["inherited"] = inherit_weights(model, load_file(parent))
    return model, None


def _morph_start(job: Any, genome: Any, info: dict[str, Any], parent_weights: str
                 ) -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    from evofusion.distill.loop import load_optimizer_tensors, optimizer_tensors
    from evofusion.genome import build, genome_from_dict
    from evofusion.genome.space import SearchSpace
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
    state = load_optimizer_file(job.parent_optimizer)
    if not state:
        return res.model, None
    cfg = TrainConfig(**job.context.train)
    parent_opt = make_optimizer(parent, cfg)
    load_optimizer_tensors(parent, parent_opt, state)
    child_opt = carry_optimizer(res.plan, parent, parent_opt, res.model, cfg)
    return res.model, optimizer_tensors(res.model, child_opt)


def carry_optimizer(plan: Plan, parent: nn.Module, parent_opt: torch.optim.Optimizer, child: nn.Module,
                    cfg: TrainConfig) -> torch.optim.Optimizer:
    """A fresh optimizer for ``child`` whose per-parameter state (AdamW moments, SGD momentum, step)
    is the parent's mapped through ``plan``; parameters the plan initializes anew get fresh state."""
    opt = make_optimizer(child, cfg)
    by_name = {n: parent_opt.state.get(p, {}) for n, p in parent.named_parameters()}
    child_params = dict(child.named_parameters())
    templates = {n: p.detach() for n, p in child_params.items()}
    per_key = {k: {n: st[k].detach().cpu() for n, st in by_name.items() if k in st and torch.is_tensor(st[k])}
               for k in MOMENTS}
    mapped = {k: apply_plan(plan, v, {n: t.cpu() for n, t in templates.items()}, state=True,
                            pad_mean=k == "exp_avg_sq") for k, v in per_key.items() if v}
    for name, p in child_params.items():
        src = plan.get(name)
        if src is None or torch.is_tensor(src):
            continue
        parent_state = by_name.get(src.name, {})
        state: dict[str, Any] = {}
        for k, m in mapped.items():
            if name in m:
                state[k] = m[name].to(p.device)
        if not state:
            continue
        if "step" in parent_state:
            state["step"] = parent_state["step"].clone() if torch.is_tensor(parent_state["step"]) \
                else parent_state["step"]
        opt.state[p] = state
    for g_new, g_old in zip(opt.param_groups, parent_opt.param_groups, strict=True):
        g_new["lr"] = g_old["lr"]
    return opt
