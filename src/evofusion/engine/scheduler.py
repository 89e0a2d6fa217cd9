"""Multi-fidelity scheduling with several objectives (successive halving rungs, promotion by rank).

After Li et al., "A System for Massively Parallel Hyperparameter Tuning" (ASHA, MLSys 2020) and
Schmucker et al., "Multi-objective Asynchronous Successive Halving" (MO-ASHA, 2021). Every new
candidate is trained to the first rung (``rungs[0]`` steps). A candidate scored at rung ``r`` is
promoted to rung ``r + 1`` as soon as it is among the best ``1 / eta`` of the candidates scored at
that rung so far -- ranked by non-dominated sorting of the run's objectives with crowding distance as
the tie-break (NSGA-II's order; MO-ASHA's default). Crowding is chosen over an epsilon-net because the
same ranking already drives NSGA-II's survival here: one notion of "best" in the whole loop, and
it keeps the extremes of the front (the smallest students) promotable, where a small-student budget
matters most. A promotion *continues* the candidate (its weights and optimizer state; the learning
rate runs one schedule per rung, a warm restart) for ``rungs[r + 1] - rungs[r]`` more steps; it never
restarts.

Promotions are decided when a generation's results are in (the Study asks them of the scheduler
with the next batch), so with the process or Ray executor promotions and new candidates share the
workers in one batch: no worker waits for a rung to fill. The scheduler's state (which candidates
were promoted) is JSON in every checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evofusion.objectives.base import ObjectiveSet
from evofusion.strategies.base import Result
from evofusion.strategies.nsga2 import survival_order


@dataclass
class Promotion:
    candidate_id: int  # the candidate that continues
    rung: int  # the rung it is promoted to
    steps: int  # more steps to train (rungs[rung] - rungs[rung - 1])


@dataclass
class RungScheduler:
    """Rungs ``(s_0 < s_1 < ...)`` in total training steps and the reduction factor ``eta``."""

    rungs: tuple[int, ...]
    eta: float = 3.0
    promoted: set[int] = field(default_factory=set)  # candidate ids already promoted

    def __post_init__(self) -> None:
        if not self.rungs or any(b <= a for a, b in zip(self.rungs, self.rungs[1:], strict=False)) or self.rungs[0] < 1:
            raise ValueError(f"rungs must be increasing step counts >= 1, got {list(self.rungs)}")

    @property
    def first_steps(self) -> int:
        return self.rungs[0]

    def promotions(self, scored: Sequence[tuple[Result, int]], objectives: ObjectiveSet) -> list[Promotion]:
        """New promotions, given every usable scored row with its rung (a promotion is a new row of the
        same genome, so each row has the one rung it was scored at). Higher rungs first."""
        out: list[Promotion] = []
        for r in range(len(self.rungs) - 2, -1, -1):
            at = [res for res, rung in scored if rung == r]
            k = math.floor(len(at) / self.eta)
            for i in survival_order(at, objectives)[:k] if k >= 1 else []:
                cid = at[i].candidate_id
                if cid not in self.promoted:
                    self.promoted.add(cid)
                    out.append(Promotion(cid, r + 1, self.rungs[r + 1] - self.rungs[r]))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rungs": list(self.rungs), "eta": self.eta, "promoted": sorted(self.promoted)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["rungs"]) != self.rungs or float(state["eta"]) != self.eta:
            raise ValueError(f"the run's rungs were {state['rungs']} (eta {state['eta']}), not {list(self.rungs)} "
                             f"(eta {self.eta})")
        self.promoted = set(state["promoted"])
