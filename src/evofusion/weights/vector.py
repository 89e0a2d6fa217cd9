"""Flat weight vectors of a fixed architecture, and batched evaluation of a whole population.

A network's *parameters* (``module.named_parameters()`` order) are its genome in weight space;
buffers (BatchNorm running statistics, ``num_batches_tracked``) are not evolved: every member of a
population shares the module's own buffers. ``PopulationEvaluator`` scores ``P`` vectors in one
``torch.vmap`` over ``torch.func.functional_call`` (eval mode), chunked over ``P`` when memory runs
short, with a per-network loop as fallback for modules whose ops have no batching rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from evofusion.errors import ConfigError

Metric = Literal["loss", "accuracy"]


def param_names(module: nn.Module) -> list[str]:
    """Names of the evolved parameters, in the order of the flat vector."""
    return [name for name, _ in module.named_parameters()]


def num_params(module: nn.Module) -> int:
    """D: the length of the module's flat vector."""
    return sum(p.numel() for p in module.parameters())


def to_vector(module: nn.Module) -> torch.Tensor:
    """The module's parameters as one detached ``(D,)`` tensor (a copy)."""
    params = list(module.parameters())
    if not params:
        return torch.empty(0)
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


def load_vector(module: nn.Module, vec: torch.Tensor) -> None:
    """Copy a ``(D,)`` vector into the module's parameters in place (buffers are left as they are)."""
    d = num_params(module)
    if vec.ndim != 1 or vec.numel() != d:
        raise ValueError(f"expected a vector of shape ({d},) for this module, got {tuple(vec.shape)}")
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            n = p.numel()
            p.copy_(vec[offset:offset + n].view_as(p))
            offset += n


def vectors_from_state_dicts(module: nn.Module, states: Sequence[Mapping[str, torch.Tensor]]) -> torch.Tensor:
    """Stack the parameters of several state dicts of ``module``'s architecture into ``(P, D)``.

    Only parameter entries are read (buffers are ignored); a missing name or a shape that differs
    from the module's raises ``ValueError`` naming the entry.
    """
    shapes = [(name, p.shape, p.dtype) for name, p in module.named_parameters()]
    rows = []
    for k, state in enumerate(states):
        parts = []
        for name, shape, dtype in shapes:
            if name not in state:
                raise ValueError(f"state {k} has no parameter '{name}'")
            t = state[name]
            if tuple(t.shape) != tuple(shape):
                raise ValueError(f"state {k}: '{name}' has shape {tuple(t.shape)}, expected {tuple(shape)}")
            parts.append(t.detach().reshape(-1).to(dtype))
        rows.append(torch.cat(parts) if parts else torch.empty(0))
    if not rows:
        return torch.empty(0, num_params(module))
    return torch.stack(rows)


def unflatten(module: nn.Module, pop: torch.Tensor) -> dict[str, torch.Tensor]:
    """Views of a ``(P, D)`` population as ``{name: (P, *shape)}`` for ``functional_call``."""
    out, offset = {}, 0
    for name, p in module.named_parameters():
        n = p.numel()
        out[name] = pop[:, offset:offset + n].reshape(pop.shape[0], *p.shape)
        offset += n
    return out


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


class PopulationEvaluator:
    """Scores a population of flat weight vectors of one architecture on fixed data.

    Args:
        module: the architecture; its buffers (BatchNorm statistics) are shared by every member and
            its parameters are restored after a looped evaluation.
        x, y: inputs ``(N, ...)`` and integer labels ``(N,)``; moved to the module's device.
        batch_size: examples per forward pass (>= 1); ``None`` = all at once.
        metric: ``"loss"`` (mean cross-entropy, lower is better) or ``"accuracy"`` (top-1 in [0, 1]).
        vectorized: ``True`` = vmap only (errors propagate), ``False`` = per-network loop, ``"auto"``
            = vmap, falling back for good to the loop the first time vmap raises.
        chunk_size: members per vmap call (>= 1); ``None`` = the whole population, halved on an
            out-of-memory error until it fits.
    """

    def __init__(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None,
                 metric: Metric = "loss", vectorized: bool | Literal["auto"] = "auto",
                 chunk_size: int | None = None):
        if metric not in ("loss", "accuracy"):
            raise ConfigError("metric", f"must be loss | accuracy, got {metric!r}")
        if vectorized not in (True, False, "auto"):
            raise ConfigError("vectorized", f"must be true | false | auto, got {vectorized!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ConfigError("batch_size", f"must be an integer >= 1 or None, got {batch_size!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ConfigError("chunk_size", f"must be an integer >= 1 or None, got {chunk_size!r}")
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"x and y must hold the same, non-zero number of examples ({len(x)} vs {len(y)})")
        self.module = module
        p = next(module.parameters(), None)
        self.device = p.device if p is not None else torch.device("cpu")
        self.dtype = p.dtype if p is not None else torch.float32
        self.x = x.to(self.device)
        self.y = y.to(self.device).long()
        self.batch_size = batch_size
        self.metric = metric
        self.vectorized = vectorized
        self.chunk_size = chunk_size
        self.dim = num_params(module)
        self.last_mode = ""  # "vmap" or "loop": how the last evaluate() ran
        self._vmap_failed = False

    # --- public ----------------------------------------------------------------------------------
    def evaluate(self, pop: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Fitness ``(P,)`` of every member, on ``pop``'s device.

        Args:
            pop: ``(P, D)`` flat parameter vectors.
            idx: optional example indices (a minibatch slice of the data) to score on instead of all.
        """
        pop = self._check(pop)
        if self.vectorized is False or (self.vectorized == "auto" and self._vmap_failed):
            return self.evaluate_looped(pop, idx)
        try:
            out = self._evaluate_vmap(pop, idx)
        except Exception as exc:  # an op without a batching rule, data-dependent control flow, ...
            if self.vectorized is True or _is_oom(exc):
                raise
            self._vmap_failed = True
            return self.evaluate_looped(pop, idx)
        self.last_mode = "vmap"
        return out

    def evaluate_looped(self, pop: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """The per-network fallback: load each vector into the module and run it (then restore it)."""
        pop = self._check(pop)
        x, y = self._data(idx)
        original = to_vector(self.module)
        was_training = self.module.training
        self.module.eval()
        scores = []
        try:
            with torch.no_grad():
                for member in pop:
                    load_vector(self.module, member.to(self.device, self.dtype))
                    total = torch.zeros((), dtype=torch.float64, device=self.device)
                    for s in self._batches(len(y)):
                        logits = self.module(x[s])
                        total += self._score(logits.unsqueeze(0), y[s])[0]
                    scores.append(total / len(y))
        finally:
            load_vector(self.module, original.to(self.device))
            self.module.train(was_training)
        self.last_mode = "loop"
        return torch.stack(scores).to(pop.device, pop.dtype)

    # --- internals -------------------------------------------------------------------------------
    def _check(self, pop: torch.Tensor) -> torch.Tensor:
        if pop.ndim != 2 or pop.shape[1] != self.dim:
            raise ValueError(f"expected a population of shape (P, {self.dim}), got {tuple(pop.shape)}")
        return pop

    def _data(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if idx is None:
            return self.x, self.y
        idx = torch.as_tensor(idx, device=self.device).long()
        if idx.numel() == 0:
            raise ValueError("idx selects no examples")
        return self.x[idx], self.y[idx]

    def _batches(self, n: int) -> list[slice]:
        b = self.batch_size or n
        return [slice(i, min(i + b, n)) for i in range(0, n, b)]

    def _score(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Summed score over the batch for each member: logits ``(P, B, C)`` -> ``(P,)`` float64."""
        p, b, c = logits.shape
        if self.metric == "loss":
            ce = F.cross_entropy(logits.reshape(p * b, c).float(), y.repeat(p), reduction="none")
            return ce.view(p, b).double().sum(1)
        return (logits.argmax(-1) == y[None, :]).double().sum(1)

    def _evaluate_vmap(self, pop: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        x, y = self._data(idx)
        buffers = dict(self.module.named_buffers())
        module = self.module

        def forward(params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(module, (params, buffers), (xb,))

        batched = torch.vmap(forward, in_dims=(0, None))
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                chunk = self.chunk_size or pop.shape[0]
                while True:
                    try:
                        scores = self._run_chunks(batched, pop, x, y, chunk)
                        break
                    except Exception as exc:
                        if not _is_oom(exc) or chunk == 1 or self.chunk_size is not None:
                            raise
                        chunk = math.ceil(chunk / 2)
                        if self.device.type == "cuda":
                            torch.cuda.empty_cache()
        finally:
            module.train(was_training)
        return (scores / len(y)).to(pop.device, pop.dtype)

    def _run_chunks(self, batched: Callable[..., torch.Tensor], pop: torch.Tensor, x: torch.Tensor,
                    y: torch.Tensor, chunk: int) -> torch.Tensor:
        out = []
        for i in range(0, pop.shape[0], chunk):
            part = pop[i:i + chunk].to(self.device, self.dtype)
            params = unflatten(self.module, part)
            total = torch.zeros(part.shape[0], dtype=torch.float64, device=self.device)
            for s in self._batches(len(y)):
                total += self._score(batched(params, x[s]), y[s])
            out.append(total)
        return torch.cat(out)
