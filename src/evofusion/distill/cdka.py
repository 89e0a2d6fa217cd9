"""CDKA (Cross-Domain Knowledge Adapter): feature KD from any teacher, inside the one training loop.

``FeatureKD`` is handed to :func:`evofusion.distill.loop.train` (``feature_kd=``). Per step it reads
the student's named taps with forward hooks during the ordinary forward pass, maps them through
learned adapters (:mod:`evofusion.distill.adapters`), compares them with the teacher's cached,
reduced features of the same examples (:mod:`evofusion.teachers.features`) by a registered loss
(:mod:`evofusion.distill.features`), and adds that to the logit KD of one or several teachers:

    loss = alpha * CE + (1 - alpha) * T^2 * sum_k w_k KL_k  +  sum_j weight_j * L_j(adapter_j(s_j), t_j)

The teacher never runs during training: its features are rows of a memory-mapped array, indexed
like the cached logits. A text teacher (class-name embeddings) is a term whose per-example target is
the embedding of the example's label (``table``). Adapters are created on the first step from the
shapes the taps produce, their parameters join the optimizer in their own group, and they follow the
student when it grows (an adapter whose student tap changed width is rebuilt keeping its weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from evofusion.distill.adapters import ADAPTER_KINDS, DIRECTIONS, Adapter, match_shape
from evofusion.distill.features import FEATURE_LOSSES, SHAPE_FREE, multi_teacher_kd
from evofusion.distill.losses import kd_loss
from evofusion.errors import ConfigError
from evofusion.genome.taps import resolve_location, tap_location
from evofusion.teachers.features import capture, split_tap

WEIGHTINGS = ("fixed", "confidence")


@dataclass
class FeatureTerm:
    """One feature-KD term.

    Args:
        student_tap: a tap the student's genome declares, a tap location (``features``,
            ``last_stage``, ``depth0.5`` ...) or, for a student that is not built from a genome, a
            module name (``:in`` for its input).
        teacher: teacher features of the training examples, row i for example i of ``x`` (a
            memmap is fine); None for a class-table term.
        table: ``(num_classes, D)`` per-class targets (e.g. text embeddings of class names); the
            target of an example is the row of its label.
        loss: a name in ``FEATURE_LOSSES``.
        weight: multiplies the term, >= 0.
        adapter: auto | conv1x1 | linear | none.
        direction: student (map student features into the teacher's space) | teacher.
        temperature: of the contrastive loss.
    """

    student_tap: str
    teacher: Any = None
    table: torch.Tensor | None = None
    loss: str = "mse"
    weight: float = 1.0
    adapter: str = "auto"
    direction: str = "student"
    temperature: float = 0.1
    name: str = ""

    def __post_init__(self) -> None:
        if self.loss not in FEATURE_LOSSES:
            raise ConfigError("loss", f"unknown feature loss {self.loss!r}; valid: {', '.join(FEATURE_LOSSES.names())}")
        if self.adapter not in ADAPTER_KINDS:
            raise ConfigError("adapter", f"must be one of {', '.join(ADAPTER_KINDS)}, got {self.adapter!r}")
        if self.direction not in DIRECTIONS:
            raise ConfigError("direction", f"must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if not self.weight >= 0:
            raise ConfigError("weight", f"must be >= 0, got {self.weight!r}")
        if (self.teacher is None) == (self.table is None):
            raise ConfigError("teacher", "a feature term needs exactly one of teacher features or a class table")
        if self.loss == "contrastive" and self.table is None:
            raise ConfigError("loss", "contrastive compares with a class table: use it with a text teacher")
        if self.loss == "at" and self.table is not None:
            raise ConfigError("loss", "attention transfer needs a teacher feature map, not a class table")
        if not self.name:
            self.name = f"{self.loss}:{self.student_tap}"

    def target_shape(self) -> tuple[int, ...]:
        src = self.table if self.table is not None else self.teacher
        return tuple(int(d) for d in src.shape[1:])


def student_tap_spec(model: nn.Module, tap: str) -> tuple[str, str]:
    """(module name, "out" | "in") where the student's ``tap`` is read."""
    genome = getattr(model, "genome", None)
    stages, head = getattr(model, "stages", None), getattr(model, "head", None)
    if genome is not None and hasattr(genome, "stages") and isinstance(stages, nn.Sequential) \
            and isinstance(head, nn.Sequential):
        index = resolve_location(genome.to_student(), tap_location(genome.to_student(), tap))
        if index is not None:
            return f"stages.{index}", "out"
        linears = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
        return f"head.{linears[-1]}", "in"
    return split_tap(tap)


class FeatureKD:
    """Feature and multi-teacher KD for :func:`~evofusion.distill.loop.train`.

    Args:
        terms: the feature terms (may be empty: multi-teacher logit KD only).
        extra_logits: logits of additional teachers on the training examples (row-aligned with x).
        teacher_weights: one weight per teacher, the ``teacher_logits`` given to ``train`` first;
            default all 1.
        weighting: fixed | confidence (per example, by each teacher's max softmax probability).
    """

    def __init__(self, terms: Sequence[FeatureTerm] = (), extra_logits: Sequence[torch.Tensor] = (),
                 teacher_weights: Sequence[float] | None = None, weighting: str = "fixed"):
        if weighting not in WEIGHTINGS:
            raise ConfigError("distill.teacher_weighting", f"must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self.terms = list(terms)
        self.extra_logits = [t.detach().float().cpu().clone() if isinstance(t, torch.Tensor)
                             else torch.from_numpy(np.array(t, dtype=np.float32)) for t in extra_logits]
        n = 1 + len(self.extra_logits)
        self.teacher_weights = [1.0] * n if teacher_weights is None else [float(w) for w in teacher_weights]
        if len(self.teacher_weights) != n or any(not w > 0 for w in self.teacher_weights):
            raise ConfigError("distill.teachers", f"need {n} positive teacher weights, got {self.teacher_weights}")
        self.weighting = weighting
        self.adapters = nn.ModuleDict()
        self._specs: dict[str, tuple[str, str]] = {}
        self._group: dict[str, Any] | None = None
        self._opt: torch.optim.Optimizer | None = None
        self.last: dict[str, float] = {}

    # --- set-up -------------------------------------------------------------------------------------
    def check_rows(self, n: int) -> None:
        for t in self.terms:
            if t.teacher is not None and len(t.teacher) != n:
                raise ValueError(f"teacher features of term {t.name!r} have {len(t.teacher)} rows but the data has {n}")
        for i, t in enumerate(self.extra_logits):
            if len(t) != n:
                raise ValueError(f"logits of teacher {i + 1} have {len(t)} rows but the data has {n}")

    def attach(self, model: nn.Module, opt: torch.optim.Optimizer, sample: torch.Tensor, weight_decay: float) -> None:
        """Create the adapters from the shapes the student's taps produce on ``sample`` (a probe in
        eval mode, without gradients) and add their parameters to ``opt`` as one group."""
        self._specs = {str(i): student_tap_spec(model, t.student_tap) for i, t in enumerate(self.terms)}
        dev = next(model.parameters()).device
        was = model.training
        model.eval()
        with torch.no_grad(), capture(model, self._specs, "student") as found:
            model(sample[:2].to(dev))
        model.train(was)
        for i, t in enumerate(self.terms):
            s_shape = tuple(found[str(i)].shape[1:])
            kind = t.adapter
            if kind == "auto" and t.loss in SHAPE_FREE:
                continue
            src, dst = (s_shape, t.target_shape()) if t.direction == "student" else (t.target_shape(), s_shape)
            try:
                self.adapters[str(i)] = Adapter(kind, src, dst).to(dev)
            except ConfigError as e:
                raise ConfigError(f"distill.features[{i}].adapter", str(e).split(": ", 1)[-1]) from None
        self._opt = opt
        params = list(self.adapters.parameters())
        if params:
            opt.add_param_group({"params": params, "weight_decay": weight_decay})
            self._group = opt.param_groups[-1]

    def rebind(self, opt: torch.optim.Optimizer, weight_decay: float) -> None:
        """Move the adapter group (and its optimizer state) to a new optimizer, e.g. the one a
        growth step builds for a morphed student."""
        params = list(self.adapters.parameters())
        if params:
            opt.add_param_group({"params": params, "weight_decay": weight_decay})
            for p in params:
                if self._opt is not None and p in self._opt.state:
                    opt.state[p] = self._opt.state[p]
            self._group = opt.param_groups[-1]
        self._opt = opt

    def _follow_student(self, key: str, s_shape: tuple[int, ...]) -> None:
        """Rebuild an adapter whose student side changed width (the student grew during training)."""
        a = self.adapters[key]
        if a.src[0] == s_shape[0]:
            return
        old = list(a.parameters())
        self.adapters[key] = a.widened(s_shape)
        if self._group is not None and self._opt is not None:
            for p in old:
                self._opt.state.pop(p, None)
            self._group["params"] = list(self.adapters.parameters())

    # --- the step -----------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, idx: torch.Tensor,
                 teacher_logits: torch.Tensor | None, alpha: float, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward the student on ``xb`` and return (logits, total loss) for the examples ``idx``."""
        specs = {str(i): student_tap_spec(model, t.student_tap) for i, t in enumerate(self.terms)}
        with capture(model, specs, "student") as found:
            out = model(xb)
        dev = out.device
        if self.extra_logits:
            teachers = ([] if teacher_logits is None else [teacher_logits]) + [t[idx].to(dev) for t in self.extra_logits]
            weights = self.teacher_weights if teacher_logits is not None else self.teacher_weights[1:]
            loss = multi_teacher_kd(out, yb, teachers, weights, self.weighting, alpha, temperature)
        else:
            loss = kd_loss(out, yb, teacher_logits, alpha=alpha, temperature=temperature)
        self.last = {"kd": float(loss.detach())}
        for i, t in enumerate(self.terms):
            key = str(i)
            s = found[key]
            if t.table is not None:
                table = t.table.to(dev)
                target = table[yb]
            else:
                rows = np.asarray(t.teacher[idx.numpy()], dtype=np.float32)
                target, table = torch.from_numpy(rows).to(dev), None
            adapter = self.adapters[key] if key in self.adapters else None
            if adapter is not None and t.direction == "student":
                self._follow_student(key, tuple(s.shape[1:]))
                s = self.adapters[key](s)
            elif adapter is not None:
                target = adapter(target)
                table = adapter(table) if table is not None else None
                if t.loss not in SHAPE_FREE:
                    s = match_shape(s, tuple(target.shape[1:]))
            elif t.loss not in SHAPE_FREE:
                s = match_shape(s, tuple(target.shape[1:]))
            term = FEATURE_LOSSES.get(t.loss)(s, target, labels=yb, table=table, temperature=t.temperature)
            self.last[t.name] = float(term.detach())
            loss = loss + t.weight * term
        return out, loss
