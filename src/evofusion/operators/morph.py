"""Function-preserving morphisms (FPMM) of the layered student, acting on genome AND weights.

Net2Net (Chen, Goodfellow & Shlens, 2016, "Net2Net: Accelerating Learning via Knowledge Transfer")
for widening and deepening, SkipInit (De & Smith, 2020) for zero-gated skips, zero-padded kernel
enlargement and a learnable activation blend that starts at the old activation. Unlike NNI's network
morphism these are exact: with ``noise=0`` the child's eval-mode outputs equal the parent's to float
rounding (the contract test checks 1e-5 elementwise).

Each operator keeps the genome-level contract (``apply_with_info(parent, rng) -> (child, info)``)
and adds the weight side:

* ``plan(parent_model, child, info, rng, calib)`` -> ``(Plan, info_updates)``: for every tensor of
  the child's state dict, where it comes from in the parent (``Src``: gathers along dims, a scale,
  zero padding) or an explicit initial value (a tensor). Tensors the plan does not name keep the
  child's fresh initialization; a function-preserving operator names every tensor that matters.
* ``transfer(parent_model, child, info, rng, noise=0.0, calib=None) -> child_model``.

The same plan maps optimizer state (``apply_plan(..., state=True)``: gathers and padding only, no
scale; explicit inits get fresh state), see ``evofusion.growth.trainer``.

Shrink operators (``shrink_width``, ``shrink_depth``) use the same machinery but cannot preserve the
function; ``morph()`` reports the damage they cause (largest logit change, top-1 agreement on a
calibration batch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evofusion.errors import ConfigError
from evofusion.genome.build import build
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import StudentGenome, spatial_sizes
from evofusion.operators.architecture import Candidate, StudentMutation
from evofusion.operators.base import OPERATORS, Info

BN_EPS = 1e-5  # nn.BatchNorm2d default, used by every student block
IDEMPOTENT = ("relu", "relu6")  # act(act(x)) == act(x): an identity block after them is exact
# f(x) - f(-x) == x: a hidden layer [I; -I] followed by [W, -W] is exact with these
ODD_SPLIT = ("relu", "gelu", "silu", "hardswish")


@dataclass
class Src:
    """Where one child tensor comes from in the parent state dict."""

    name: str
    index: tuple[tuple[int, torch.Tensor], ...] = ()  # (dim, indices) gathers, applied in order
    scale: tuple[tuple[int, torch.Tensor], ...] = ()  # weights only: (dim, factors) after gathering
    pad: tuple[int, ...] | None = None  # zero padding in F.pad order, after gathering
    noisy: tuple[int, torch.Tensor] | None = None  # (dim, indices) that may get symmetry-breaking noise
    # (dim, indices) slices reset after gathering, in order: "zero" -> 0, "init" -> the child's fresh
    # init; optimizer first moments of both start at 0 (new units have no velocity)
    reset: tuple[tuple[int, torch.Tensor, str], ...] = ()


Plan = dict[str, "Src | torch.Tensor"]


@dataclass
class MorphResult:
    """A morph applied to a live model: child genome + info, the child model, the plan, the damage."""

    genome: StudentGenome
    info: Info
    model: nn.Module
    plan: Plan
    damage: dict[str, float] = field(default_factory=dict)


# --- plan application ---------------------------------------------------------------------------
def apply_plan(plan: Plan, parent: dict[str, torch.Tensor], child: dict[str, torch.Tensor], *,
               state: bool = False, noise: float = 0.0,
               generator: torch.Generator | None = None, pad_mean: bool = True) -> dict[str, torch.Tensor]:
    """Map ``parent`` tensors to the child's names and shapes (``child`` gives both).

    With ``state=False`` (weights) tensors the plan leaves out keep the ``child`` value; explicit
    inits are used as given; ``noise`` > 0 adds N(0, (noise * std)^2) to the ``noisy`` slices.
    With ``state=True`` (optimizer moments) only gathered/padded tensors are returned, unscaled:
    everything else starts with fresh state. A padded border (new kernel taps) gets the tensor's mean
    with ``pad_mean`` (second moments: no several-fold first steps there) and 0 without (first moments
    and momentum: the new weights start with no velocity, instead of all moving one shared way).
    """
    out: dict[str, torch.Tensor] = {}
    for name, tmpl in child.items():
        src = plan.get(name)
        if src is None or isinstance(src, torch.Tensor):
            if not state:
                out[name] = tmpl if src is None else src.to(tmpl.dtype).reshape(tmpl.shape).clone()
            continue
        if src.name not in parent:
            continue
        t = parent[src.name]
        for dim, idx in src.index:
            t = t.index_select(dim, idx)
        if not state:
            for dim, factors in src.scale:
                shape = [1] * t.ndim
                shape[dim] = -1
                t = t * factors.reshape(shape)
        if src.pad is not None:
            # second moments of the new border: the tensor's mean, not 0 (a zero second moment next
            # to a carried step count would make Adam take several-fold steps there); first moments 0
            t = F.pad(t, src.pad, value=float(t.mean()) if state and pad_mean else 0.0)
        t = t.clone()
        for dim, idx, how in src.reset:
            if not len(idx):
                continue
            if state:
                if not pad_mean:  # first moments / momentum of reset units: no velocity
                    t.index_fill_(dim, idx, 0.0)
            elif how == "zero":
                t.index_fill_(dim, idx, 0.0)
            else:
                t.index_copy_(dim, idx, tmpl.detach().cpu().to(t.dtype).index_select(dim, idx))
        if noise and not state and src.noisy is not None and t.is_floating_point():
            dim, idx = src.noisy
            part = t.index_select(dim, idx)
            std = float(t.std()) if t.numel() > 1 else 1.0
            part = part + noise * std * torch.randn(part.shape, generator=generator)
            t.index_copy_(dim, idx, part)
        if t.shape != tmpl.shape:
            raise RuntimeError(f"morph plan gives {name} shape {tuple(t.shape)}, the child needs "
                               f"{tuple(tmpl.shape)}")
        out[name] = t.to(tmpl.dtype)
    return out


def identity_plan(parent_sd: dict[str, torch.Tensor], child_sd: dict[str, torch.Tensor]) -> Plan:
    """Same name and shape -> copied."""
    return {k: Src(k) for k, v in child_sd.items() if k in parent_sd and parent_sd[k].shape == v.shape}


# --- names in a built Student ------------------------------------------------------------------
def _block(i: int, j: int) -> str:
    return f"stages.{i}.blocks.{j}"


def _head_linears(g: StudentGenome) -> tuple[str | None, str]:
    """(hidden linear prefix or None, final linear prefix) in ``Student.head``."""
    hidden = "head.2" if g.head.hidden else None
    final = 2 + (2 if g.head.hidden else 0) + (1 if g.head.dropout else 0)
    return hidden, f"head.{final}"


def _stage_in(g: StudentGenome, i: int) -> int:
    return g.in_channels if i == 0 else g.stages[i - 1].width


def _has_projection(g: StudentGenome, i: int) -> bool:
    s = g.stages[i]
    return s.skip and _stage_in(g, i) != s.width


def _bn_identity(prefix: str, mean: torch.Tensor, var: torch.Tensor) -> Plan:
    """BatchNorm that is the identity in eval mode: (x - mean) / sqrt(var + eps) * w + b with
    w = sqrt(var + eps), b = mean; mean/var are the input's statistics so it is ~identity in
    training mode as well."""
    return {f"{prefix}.weight": torch.sqrt(var + BN_EPS), f"{prefix}.bias": mean.clone(),
            f"{prefix}.running_mean": mean.clone(), f"{prefix}.running_var": var.clone(),
            f"{prefix}.num_batches_tracked": torch.zeros((), dtype=torch.long)}


def _rename_prefix(plan: Plan, parent_sd: dict[str, torch.Tensor], old: str, new: str) -> None:
    for k in parent_sd:
        if k.startswith(old + "."):
            plan[new + k[len(old):]] = Src(k)


def _gather(plan: Plan, name: str, dim: int, idx: torch.Tensor, scale: torch.Tensor | None = None,
            noisy: torch.Tensor | None = None, reset: tuple[torch.Tensor, str] | None = None) -> None:
    """Add a gather along ``dim`` to the entry for ``name`` (creating ``Src(name)`` if absent);
    ``reset = (indices, "zero" | "init")`` then resets those slices along ``dim``."""
    src = plan.get(name)
    if src is None or isinstance(src, torch.Tensor):
        src = Src(name)
    scales = src.scale + (((dim, scale),) if scale is not None else ())
    resets = src.reset + (((dim, reset[0], reset[1]),) if reset is not None else ())
    plan[name] = Src(src.name, src.index + ((dim, idx),), scales, src.pad,
                     (dim, noisy) if noisy is not None else src.noisy, resets)


def _bn_gather(plan: Plan, prefix: str, idx: torch.Tensor, fresh: torch.Tensor | None = None) -> None:
    for t in ("weight", "bias", "running_mean", "running_var"):
        _gather(plan, f"{prefix}.{t}", 0, idx, reset=None if fresh is None else (fresh, "init"))


def _consumer_inputs(g: StudentGenome, child: StudentGenome, i: int, plan: Plan,
                     idx: torch.Tensor, scale: torch.Tensor | None, zero: torch.Tensor | None = None) -> None:
    """Re-map the inputs of whatever reads stage ``i``'s output (child input channel j reads parent
    channel idx[j], times scale[j]): the next stage's first conv and shortcut, or the head.
    ``zero``: child input channels whose weights start at 0 (fresh units: zero fan-out)."""
    rz = None if zero is None else (zero, "zero")
    if i + 1 < len(g.stages):
        _gather(plan, f"{_block(i + 1, 0)}.0.weight", 1, idx, scale, reset=rz)
        if _has_projection(g, i + 1):
            _gather(plan, f"stages.{i + 1}.shortcut.0.weight", 1, idx, scale, reset=rz)
        elif g.stages[i + 1].skip:  # identity shortcut in the parent becomes a projection in the child
            w_next = g.stages[i + 1].width
            w = torch.zeros(w_next, len(idx), 1, 1)
            for j, k in enumerate(idx.tolist()):
                w[k, j, 0, 0] = 1.0 if scale is None else float(scale[j])
            plan[f"stages.{i + 1}.shortcut.0.weight"] = w
            plan.update(_bn_identity(f"stages.{i + 1}.shortcut.1", torch.zeros(w_next), torch.ones(w_next)))
        return
    first = _head_linears(g)[0] or _head_linears(g)[1]
    first_child = _head_linears(child)[0] or _head_linears(child)[1]
    if first_child != first:
        raise RuntimeError("head layout changed while re-mapping the last stage")
    if g.head.kind == "flatten":
        s2 = spatial_sizes(g)[-1] ** 2
        pos = torch.arange(s2)
        if zero is not None:
            zero = (zero[:, None] * s2 + pos[None, :]).reshape(-1)
        idx = (idx[:, None] * s2 + pos[None, :]).reshape(-1)
        scale = None if scale is None else scale.repeat_interleave(s2)
    _gather(plan, f"{first}.weight", 1, idx, scale, reset=None if zero is None else (zero, "zero"))


def _check_shortcuts_kept(g: StudentGenome, child: StudentGenome) -> None:
    """A projection shortcut must not turn into an identity (its learned map would be lost)."""
    for i in range(len(g.stages)):
        if i < len(child.stages) and _has_projection(g, i) and child.stages[i].skip \
                and not _has_projection(child, i):
            raise ValueError(f"stage {i}'s projection shortcut would become an identity")


def _replication(old: int, new: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Net2WiderNet map: child unit j copies parent unit idx[j] (the first ``old`` keep their place,
    the rest are drawn at random); scale[j] is copy j's share of the original's outgoing weights.

    The shares of one unit's copies sum to 1, so the function is unchanged. They are random (each in
    [0.5, 1.5] before normalizing) rather than the equal 1/copies of the paper: copies with equal
    shares get equal gradients forever and the widening adds no capacity, while unequal shares break
    the symmetry without the function change that added noise would cause.
    """
    extra = rng.integers(0, old, new - old) if new > old else np.zeros(0, dtype=np.int64)
    idx = torch.as_tensor(np.concatenate([np.arange(old), extra]), dtype=torch.long)
    raw = torch.as_tensor(rng.uniform(0.5, 1.5, new), dtype=torch.float64)
    total = torch.zeros(old, dtype=torch.float64).index_add_(0, idx, raw)
    return idx, (raw / total[idx]).float()


WIDEN_INITS = ("split", "fresh")


class _Widening:
    """Constructor of the widening morphs: ``init`` says how new units start, ``split``
    (Net2WiderNet: copies of existing units, outgoing weights shared among the copies) or ``fresh``
    (the child's random init coming in, zero weights going out, as in GradMax / Firefly). Both keep
    the function exactly; ``fresh`` units are new features that train like a from-scratch net's."""

    def __init__(self, space: SearchSpace, max_tries: int = 10, init: str = "split"):
        if init not in WIDEN_INITS:
            raise ConfigError("init", f"widening init must be one of {', '.join(WIDEN_INITS)}, got {init!r}")
        super().__init__(space, max_tries=max_tries)  # type: ignore[call-arg]
        self.init = init


def _calib_stats(model: nn.Module, module: nn.Module, x: torch.Tensor | None,
                 channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of ``module``'s output on ``x`` (0 and 1 without data)."""
    if x is None or len(x) == 0:
        return torch.zeros(channels), torch.ones(channels)
    got: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, o: got.append(o.detach()))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was)
    h = got[0].transpose(0, 1).reshape(channels, -1).double()
    return h.mean(1).float(), h.var(1, unbiased=False).float()


# --- operators --------------------------------------------------------------------------------
class MorphOperator(StudentMutation):
    """A mutation with a weight transform (see the module docstring)."""

    inherits_weights = True

    def plan(self, parent_model: nn.Module, child: StudentGenome, info: Info, rng: np.random.Generator,
             calib: torch.Tensor | None = None) -> tuple[Plan, Info]:
        """The weight plan for ``child`` (made from ``parent_model.genome`` with ``info``), plus any
        arguments chosen while planning (e.g. which block a shrink removes)."""
        g: StudentGenome = parent_model.genome  # type: ignore[assignment]
        psd = parent_model.state_dict()
        with torch.device("meta"):
            csd = build(child).state_dict()
        plan = identity_plan(psd, csd)
        extra = self._plan(g, child, info, plan, psd, parent_model, rng, calib)
        return plan, extra

    def _plan(self, g: StudentGenome, child: StudentGenome, info: Info, plan: Plan,
              psd: dict[str, torch.Tensor], model: nn.Module, rng: np.random.Generator,
              calib: torch.Tensor | None) -> Info:
        raise NotImplementedError

    def transfer(self, parent_model: nn.Module, child: StudentGenome, info: Info, rng: np.random.Generator,
                 noise: float = 0.0, calib: torch.Tensor | None = None) -> nn.Module:
        """``build(child)`` with the parent's weights mapped (exactly, for ``preserves_function``)."""
        return self._transfer(parent_model, child, info, rng, noise, calib)[0]

    def _transfer(self, parent_model: nn.Module, child: StudentGenome, info: Info, rng: np.random.Generator,
                  noise: float, calib: torch.Tensor | None) -> tuple[nn.Module, Plan, Info]:
        plan, extra = self.plan(parent_model, child, info, rng, calib)
        seed = int(rng.integers(0, 2**63 - 1))
        model = build(child, seed=seed)  # fresh init of tensors the plan leaves out, from rng only
        gen = torch.Generator().manual_seed(seed)
        sd = apply_plan(plan, {k: v.detach().cpu() for k, v in parent_model.state_dict().items()},
                        model.state_dict(), noise=noise, generator=gen)
        model.load_state_dict(sd)
        model.to(next(parent_model.parameters()).device)
        model.train(parent_model.training)
        return model, plan, extra

    def edits(self, g: StudentGenome, rng: np.random.Generator) -> list[tuple[StudentGenome, Info]]:
        """Every valid in-space edit of ``g`` (what a controller chooses from), in a fixed order."""
        out = []
        inside = self.space.contains(g)
        for make in self._candidates(g, rng):
            try:
                child, info = make()
            except ValueError:
                continue
            if inside and not self.space.contains(child):
                continue
            out.append((child, info))
        return out


def _checked(make: Callable[[], tuple[StudentGenome, Info]], g: StudentGenome) -> Candidate:
    def run() -> tuple[StudentGenome, Info]:
        child, info = make()
        _check_shortcuts_kept(g, child)
        return child, info
    return run


@OPERATORS.register("fp_widen")
class FPWiden(_Widening, MorphOperator):
    """Net2WiderNet: widen one stage to the next larger ``space.widths`` value; new channels copy
    random old ones (BatchNorm included) and the next layer splits its input weights among copies."""

    name = "fp_widen"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        out = []
        for i, s in enumerate(g.stages):
            above = sorted(w for w in set(self.space.widths) if w > s.width)
            if above:
                new = int(above[0])
                out.append(_checked(lambda i=i, old=s.width, new=new: (
                    g.with_stage(i, width=new), {"stage": i, "old": old, "new": new}), g))
        return out

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        i, old, new = info["stage"], info["old"], info["new"]
        idx, scale = _replication(old, new, rng)
        fresh = torch.arange(old, new)
        init = self.init
        if init == "fresh":  # new units: the child's random init in, zero out (GradMax-style, exact)
            scale = (torch.arange(new) < old).float()
        st = g.stages[i]
        for j in range(st.depth):
            b = _block(i, j)
            if init == "fresh":
                if j > 0:  # old units ignore the new inputs; new units' rows are all fresh
                    _gather(plan, f"{b}.0.weight", 1, idx, reset=(fresh, "zero"))
                _gather(plan, f"{b}.0.weight", 0, idx, reset=(fresh, "init"))
                _bn_gather(plan, f"{b}.1", idx, fresh)
                continue
            _gather(plan, f"{b}.0.weight", 0, idx, noisy=fresh)
            _bn_gather(plan, f"{b}.1", idx)
            if j > 0:
                _gather(plan, f"{b}.0.weight", 1, idx, scale)
        if _has_projection(g, i):
            _gather(plan, f"stages.{i}.shortcut.0.weight", 0, idx, reset=(fresh, "init") if init == "fresh" else None)
            _bn_gather(plan, f"stages.{i}.shortcut.1", idx, fresh if init == "fresh" else None)
        elif st.skip:  # identity shortcut becomes a 1x1 projection that copies channels
            w = torch.zeros(new, old, 1, 1)
            w[torch.arange(new), idx, 0, 0] = 1.0
            plan[f"stages.{i}.shortcut.0.weight"] = w
            plan.update(_bn_identity(f"stages.{i}.shortcut.1", torch.zeros(new), torch.ones(new)))
        _consumer_inputs(g, child, i, plan, idx, scale, fresh if init == "fresh" else None)
        return {}


@OPERATORS.register("fp_widen_head")
class FPWidenHead(_Widening, MorphOperator):
    """Net2WiderNet on the head's hidden linear layer: grow ``head.hidden`` to the next larger
    ``space.head_hidden`` value (units replicated, the classifier's input weights split)."""

    name = "fp_widen_head"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        from dataclasses import replace
        above = sorted(h for h in set(self.space.head_hidden) if h > g.head.hidden)
        if not g.head.hidden or not above:
            return []
        new = int(above[0])
        return [lambda: (g.replace(head=replace(g.head, hidden=new)),
                         {"stage": -1, "old": g.head.hidden, "new": new})]

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        idx, scale = _replication(info["old"], info["new"], rng)
        hidden, final = _head_linears(g)
        fresh = torch.arange(info["old"], info["new"])
        if self.init == "fresh":
            _gather(plan, f"{hidden}.weight", 0, idx, reset=(fresh, "init"))
            _gather(plan, f"{hidden}.bias", 0, idx, reset=(fresh, "init"))
            _gather(plan, f"{final}.weight", 1, idx, reset=(fresh, "zero"))
            return {}
        _gather(plan, f"{hidden}.weight", 0, idx, noisy=fresh)
        _gather(plan, f"{hidden}.bias", 0, idx)
        _gather(plan, f"{final}.weight", 1, idx, scale)
        return {}


@OPERATORS.register("fp_deepen")
class FPDeepen(MorphOperator):
    """Net2DeeperNet: insert an identity block (Dirac kernel, BatchNorm set to the identity) after
    block ``position - 1`` of a stage whose activation is idempotent (relu, relu6; no blend)."""

    name = "fp_deepen"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        out = []
        for i, s in enumerate(g.stages):
            if s.activation in IDEMPOTENT and not s.blend and s.depth + 1 <= self.space.max_depth:
                for p in range(1, s.depth + 1):
                    out.append(lambda i=i, p=p, d=s.depth: (
                        g.with_stage(i, depth=d + 1), {"stage": i, "position": p, "old": d, "new": d + 1}))
        return out

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        i, p = info["stage"], info["position"]
        st = g.stages[i]
        for j in range(p, st.depth):
            _rename_prefix(plan, psd, _block(i, j), _block(i, j + 1))
        b = _block(i, p)
        w = torch.zeros(st.width, st.width, st.kernel, st.kernel)
        nn.init.dirac_(w)
        plan[f"{b}.0.weight"] = w
        mean, var = _calib_stats(model, model.stages[i].blocks[p - 1], calib, st.width)
        plan.update(_bn_identity(f"{b}.1", mean, var))
        return {}


@OPERATORS.register("fp_deepen_head")
class FPDeepenHead(MorphOperator):
    """Insert a hidden linear layer into a head without one: ``h = act([I; -I; R] x)``, logits
    ``[W, -W, 0] h + b``; exact because act(x) - act(-x) == x for relu, gelu, silu and hardswish.
    The hidden size is the smallest ``space.head_hidden`` value >= 2 x features; units beyond 2 x
    features get random rows ``R`` and zero output weights (they learn from there)."""

    name = "fp_deepen_head"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        from dataclasses import replace
        if g.head.hidden or g.stages[-1].activation not in ODD_SPLIT:
            return []
        c = g.stages[-1].width
        feats = c if g.head.kind == "gap" else c * spatial_sizes(g)[-1] ** 2
        sizes = sorted(h for h in set(self.space.head_hidden) if h >= 2 * feats)
        if not sizes:
            return []
        return [lambda: (g.replace(head=replace(g.head, hidden=int(sizes[0]))),
                         {"stage": -1, "old": 0, "new": int(sizes[0]), "features": feats})]

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        feats, new = info["features"], info["new"]
        _, final = _head_linears(g)
        hidden, cfinal = _head_linears(child)
        eye = torch.eye(feats)
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        bound = 1.0 / feats ** 0.5  # nn.Linear's default init range
        extra = (torch.rand(new - 2 * feats, feats, generator=gen) * 2 - 1) * bound
        plan[f"{hidden}.weight"] = torch.cat([eye, -eye, extra])
        plan[f"{hidden}.bias"] = torch.zeros(new)
        w = psd[f"{final}.weight"]
        plan[f"{cfinal}.weight"] = torch.cat([w, -w, torch.zeros(w.shape[0], new - 2 * feats)], dim=1)
        plan[f"{cfinal}.bias"] = psd[f"{final}.bias"].clone()
        return {}


@OPERATORS.register("fp_skip")
class FPSkip(MorphOperator):
    """Switch a stage's residual skip on through a learnable gate that starts at 0 (SkipInit), so the
    branch adds nothing until training opens it; needs ``space.allow_skip``."""

    name = "fp_skip"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        if not self.space.allow_skip:
            return []
        return [lambda i=i: (g.with_stage(i, skip=True, skip_gate=True), {"stage": i})
                for i, s in enumerate(g.stages) if not s.skip]

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        plan[f"stages.{info['stage']}.gate"] = torch.zeros(())
        return {}


@OPERATORS.register("fp_kernel")
class FPKernel(MorphOperator):
    """Enlarge one stage's kernels to the next larger ``space.kernels`` size by zero padding."""

    name = "fp_kernel"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        out = []
        for i, s in enumerate(g.stages):
            above = sorted(k for k in set(self.space.kernels) if k > s.kernel)
            if above:
                out.append(lambda i=i, old=s.kernel, new=int(above[0]): (
                    g.with_stage(i, kernel=new), {"stage": i, "old": old, "new": new}))
        return out

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        d = (info["new"] - info["old"]) // 2
        for j in range(g.stages[info["stage"]].depth):
            name = f"{_block(info['stage'], j)}.0.weight"
            plan[name] = Src(name, pad=(d, d, d, d))
        return {}


@OPERATORS.register("fp_activation")
class FPActivation(MorphOperator):
    """Start moving one stage to another ``space.activations`` activation through a learnable blend
    ``old + mix * (new - old)`` with ``mix = 0`` (a stage blends at most one new activation)."""

    name = "fp_activation"
    preserves_function = True

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        return [lambda i=i, a=str(a): (g.with_stage(i, blend=a), {"stage": i, "new": a})
                for i, s in enumerate(g.stages) if not s.blend
                for a in dict.fromkeys(self.space.activations) if a != s.activation]

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        for j in range(g.stages[info["stage"]].depth):
            plan[f"{_block(info['stage'], j)}.2.mix"] = torch.zeros(())
        return {}


@OPERATORS.register("shrink_width")
class ShrinkWidth(MorphOperator):
    """Narrow one stage to the next smaller ``space.widths`` value, keeping in every block the
    channels with the largest |BatchNorm gamma| (network slimming); not function preserving, the
    damage is reported by ``morph``."""

    name = "shrink_width"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        out = []
        for i, s in enumerate(g.stages):
            below = sorted(w for w in set(self.space.widths) if w < s.width)
            if below:
                out.append(_checked(lambda i=i, old=s.width, new=int(below[-1]): (
                    g.with_stage(i, width=new), {"stage": i, "old": old, "new": new}), g))
        return out

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        i, new = info["stage"], info["new"]
        st = g.stages[i]
        keep = torch.arange(0)
        for j in range(st.depth):
            b = _block(i, j)
            gamma = psd[f"{b}.1.weight"].abs()
            if j == st.depth - 1 and _has_projection(g, i):
                gamma = gamma + psd[f"stages.{i}.shortcut.1.weight"].abs()
            if j > 0:
                _gather(plan, f"{b}.0.weight", 1, keep)
            keep = torch.sort(torch.argsort(gamma, descending=True, stable=True)[:new]).values
            _gather(plan, f"{b}.0.weight", 0, keep)
            _bn_gather(plan, f"{b}.1", keep)
        if _has_projection(g, i):
            _gather(plan, f"stages.{i}.shortcut.0.weight", 0, keep)
            _bn_gather(plan, f"stages.{i}.shortcut.1", keep)
        elif st.skip:
            w = torch.zeros(new, st.width, 1, 1)
            w[torch.arange(new), keep, 0, 0] = 1.0
            plan[f"stages.{i}.shortcut.0.weight"] = w
            plan.update(_bn_identity(f"stages.{i}.shortcut.1", torch.zeros(new), torch.ones(new)))
        _consumer_inputs(g, child, i, plan, keep, None)
        return {"kept": keep.tolist()}


@OPERATORS.register("shrink_depth")
class ShrinkDepth(MorphOperator):
    """Remove one block (not the first) from a stage; with a calibration batch the block whose
    removal changes the logits least is chosen, else the last one. Reports its damage via ``morph``."""

    name = "shrink_depth"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        return [lambda i=i, d=s.depth: (g.with_stage(i, depth=d - 1), {"stage": i, "old": d, "new": d - 1})
                for i, s in enumerate(g.stages) if s.depth - 1 >= max(1, self.space.min_depth)]

    def _plan(self, g, child, info, plan, psd, model, rng, calib):  # type: ignore[no-untyped-def]
        i = info["stage"]
        depth = g.stages[i].depth
        choices = list(range(1, depth))
        best = choices[-1]
        if calib is not None and len(choices) > 1:
            ref = _eval_logits(model, calib)
            blocks = model.stages[i].blocks
            errs = []
            for p in choices:
                keep = [blocks[j] for j in range(depth) if j != p]
                model.stages[i].blocks = nn.Sequential(*keep)
                try:
                    errs.append(float((_eval_logits(model, calib) - ref).abs().max()))
                finally:
                    model.stages[i].blocks = blocks
            best = choices[int(np.argmin(errs))]
        for j in range(best, depth - 1):
            _rename_prefix(plan, psd, _block(i, j + 1), _block(i, j))
        return {"block": best}


def _eval_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was)


def function_damage(parent: nn.Module, child: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """How much a morph changed the function on ``x`` (eval mode): the largest absolute logit change
    and the share of inputs whose top-1 class is unchanged."""
    a, b = _eval_logits(parent, x), _eval_logits(child, x)
    return {"max_abs_logit_change": float((a - b).abs().max()) if len(x) else 0.0,
            "top1_agreement": float((a.argmax(1) == b.argmax(1)).float().mean()) if len(x) else 1.0}


def morph(op: MorphOperator, parent_model: nn.Module, child: StudentGenome, info: Info,
          rng: np.random.Generator, *, noise: float = 0.0, calib: torch.Tensor | None = None) -> MorphResult:
    """Apply a chosen edit (``child``, ``info`` from ``op.apply_with_info`` or ``op.edits``) to a
    live model; ``damage`` is measured on ``calib`` when given."""
    model, plan, extra = op._transfer(parent_model, child, info, rng, noise, calib)
    damage = function_damage(parent_model, model, calib) if calib is not None else {}
    return MorphResult(child, {**info, **extra}, model, plan, damage)


def morph_operator_names(preserving_only: bool = True) -> list[str]:
    """Registered operators with a weight transform (only the function-preserving ones by default)."""
    names = []
    for name in OPERATORS.names():
        cls = OPERATORS.get(name)
        if isinstance(cls, type) and issubclass(cls, MorphOperator) \
                and (cls.preserves_function or not preserving_only):
            names.append(name)
    return names


def params_of(genome: StudentGenome) -> int:
    """Parameter count of ``build(genome)`` without allocating weights."""
    with torch.device("meta"):
        m = build(genome)
    return int(sum(p.numel() for p in m.parameters()))


__all__ = ["IDEMPOTENT", "ODD_SPLIT", "MorphOperator", "MorphResult", "Plan", "Src", "apply_plan",
           "function_damage", "morph", "morph_operator_names", "params_of"]
