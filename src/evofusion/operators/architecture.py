"""Plain architecture mutations of the layered student spec (one parent, one child).

The mutations of the CNN-GA / EvoFusion seeds: change one stage's width, depth, kernel, activation,
pooling or skip, add or remove a whole stage, or change the head. None of them preserves the
parent's function (the function-preserving morphisms are a separate family).

Every operator here enumerates the edits it could make, tries them in an ``rng``-drawn order and
returns the first whose child validates and lies inside the search space (when the parent did); at
most ``max_tries`` edits are tried. With no possible edit it returns the parent with
``{"noop": True}``. ``info`` names the edit, e.g. ``{"stage": 1, "old": 16, "new": 24}``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import StudentGenome
from evofusion.operators.base import OPERATORS, Info, Operator, first_valid

Candidate = Callable[[], tuple[StudentGenome, Info]]


class StudentMutation(Operator):
    """Base of the one-parent student mutations: subclasses list candidate edits in ``_candidates``."""

    arity = 1
    genome_kind = "student"

    def __init__(self, space: SearchSpace, max_tries: int = 10):
        if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
            raise ConfigError("max_tries", f"must be an integer >= 1, got {max_tries!r}")
        super().__init__(space, max_tries=max_tries)
        self.max_tries = max_tries  # [1, inf) candidate edits tried before giving up (noop)

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[StudentGenome, Info]:
        (parent,) = parents
        return first_valid(parent, self._candidates(parent, rng), rng, self.space, self.max_tries)

    @abstractmethod
    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        """Every edit this operator could make to ``g``, each a thunk building ``(child, info)``."""


def _stage_edit(g: StudentGenome, stage: int, field: str, new: Any) -> Candidate:
    old = getattr(g.stages[stage], field)
    return lambda: (g.with_stage(stage, **{field: new}), {"stage": stage, "old": old, "new": new})


@OPERATORS.register("mutate_width")
class MutateWidth(StudentMutation):
    """Move one stage's width to a neighbouring value of ``space.widths`` (one step up or down)."""

    name = "mutate_width"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        widths = sorted(set(self.space.widths))
        out = []
        for i, s in enumerate(g.stages):
            below = [w for w in widths if w < s.width]
            above = [w for w in widths if w > s.width]
            for new in ([below[-1]] if below else []) + ([above[0]] if above else []):
                out.append(_stage_edit(g, i, "width", int(new)))
        return out


@OPERATORS.register("mutate_depth")
class MutateDepth(StudentMutation):
    """Add or remove one conv block in one stage, within ``[space.min_depth, space.max_depth]``."""

    name = "mutate_depth"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        return [_stage_edit(g, i, "depth", s.depth + d)
                for i, s in enumerate(g.stages) for d in (-1, 1)
                if self.space.min_depth <= s.depth + d <= self.space.max_depth]


class _StageChoice(StudentMutation):
    """Set one stage's ``field`` to another value of the space's list of allowed values."""

    field = ""

    @abstractmethod
    def _values(self) -> tuple[Any, ...]:
        """The values the space allows for ``field``."""

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        values = list(dict.fromkeys(self._values()))
        return [_stage_edit(g, i, self.field, v)
                for i, s in enumerate(g.stages) for v in values if v != getattr(s, self.field)]


@OPERATORS.register("mutate_kernel")
class MutateKernel(_StageChoice):
    """Give one stage another kernel size from ``space.kernels``."""

    name = "mutate_kernel"
    field = "kernel"

    def _values(self) -> tuple[Any, ...]:
        return tuple(int(k) for k in self.space.kernels)


@OPERATORS.register("mutate_activation")
class MutateActivation(_StageChoice):
    """Give one stage another activation from ``space.activations``."""

    name = "mutate_activation"
    field = "activation"

    def _values(self) -> tuple[Any, ...]:
        return tuple(str(a) for a in self.space.activations)


@OPERATORS.register("mutate_pool")
class MutatePool(_StageChoice):
    """Give one stage another pooling kind from ``space.pools``."""

    name = "mutate_pool"
    field = "pool"

    def _values(self) -> tuple[Any, ...]:
        return tuple(str(p) for p in self.space.pools)


@OPERATORS.register("toggle_skip")
class ToggleSkip(StudentMutation):
    """Switch one stage's residual skip on or off; switching on needs ``space.allow_skip``."""

    name = "toggle_skip"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        return [_stage_edit(g, i, "skip", not s.skip)
                for i, s in enumerate(g.stages) if s.skip or self.space.allow_skip]


@OPERATORS.register("mutate_head")
class MutateHead(StudentMutation):
    """Change the head's kind (``space.head_kinds``) or hidden size (``space.head_hidden``).

    ``info`` is ``{"field": "kind" | "hidden", "old": ..., "new": ...}``.
    """

    name = "mutate_head"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        def edit(field: str, new: Any) -> Candidate:
            old = getattr(g.head, field)
            return lambda: (g.replace(head=replace(g.head, **{field: new})),
                            {"field": field, "old": old, "new": new})

        kinds = [edit("kind", str(k)) for k in dict.fromkeys(self.space.head_kinds) if k != g.head.kind]
        hidden = [edit("hidden", int(h)) for h in dict.fromkeys(self.space.head_hidden) if h != g.head.hidden]
        return kinds + hidden


@OPERATORS.register("add_stage")
class AddStage(StudentMutation):
    """Insert a random stage (``space.sample_stage``) at a random position, up to ``space.max_stages``.

    ``info`` is ``{"position": i, "stage": {...the inserted StageGene's fields...}}``; the new stage
    sits at index ``i`` of the child.
    """

    name = "add_stage"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        if len(g.stages) >= self.space.max_stages:
            return []

        def insert(pos: int) -> Candidate:
            def make() -> tuple[StudentGenome, Info]:
                # sampled lazily, only for the positions actually tried (each draw comes from rng)
                stage = self.space.sample_stage(rng)
                stages = g.stages[:pos] + (stage,) + g.stages[pos:]
                return g.replace(stages=stages), {"position": pos, "stage": asdict(stage)}
            return make

        return [insert(pos) for pos in range(len(g.stages) + 1)]


@OPERATORS.register("remove_stage")
class RemoveStage(StudentMutation):
    """Delete one stage, down to ``space.min_stages``.

    ``info`` is ``{"position": i, "stage": {...the removed StageGene's fields...}}``.
    """

    name = "remove_stage"

    def _candidates(self, g: StudentGenome, rng: np.random.Generator) -> list[Candidate]:
        if len(g.stages) <= max(1, self.space.min_stages):
            return []

        def remove(pos: int) -> Candidate:
            return lambda: (g.replace(stages=g.stages[:pos] + g.stages[pos + 1:]),
                            {"position": pos, "stage": asdict(g.stages[pos])})

        return [remove(pos) for pos in range(len(g.stages))]
