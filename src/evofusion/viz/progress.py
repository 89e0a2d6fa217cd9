"""Progress of any run kind: a Rich bar with ETA on a terminal, plain periodic log lines otherwise
(a log file, CI, a cluster job), so a long run is never silent. ``make_progress`` picks one."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from evofusion.engine.callbacks import Callback
from evofusion.engine.evaluator import set_training_progress


class RichProgress(Callback):
    """Progress of any run kind (``run.progress()``: units done, units in all, unit name)."""

    def __init__(self, console: Any = None):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)
        self.task: Any = None
        self.best = 0.0
        self.unit = "candidate"

    def on_study_start(self, study: Any) -> None:
        done, total, self.unit = study.progress()
        self.progress.start()
        self.task = self.progress.add_task(study.kind, total=total,
                                           completed=done if total is None else min(done, total))
        set_training_progress(self._inside)

    def on_generation_start(self, study: Any, generation: int, n: int) -> None:
        self.progress.update(self.task, description=f"generation {generation}  best val acc {self.best:.4f}")

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        if outcome.status == "COMPLETE":
            self.best = max(self.best, outcome.values.get("accuracy", 0.0))
        if self.unit == "candidate":
            self.progress.advance(self.task)

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        self.progress.update(self.task, completed=study.progress()[0],
                             description=f"generation {generation + 1}  best val acc {self.best:.4f}")

    def _inside(self, cid: int, step: int, total: int) -> None:
        if step == 1 or step == total or step % 20 == 0:
            self.progress.update(self.task, description=f"candidate {cid}: step {step}/{total}  "
                                                        f"best val acc {self.best:.4f}")

    def on_study_end(self, study: Any) -> None:
        set_training_progress(None)
        self.progress.stop()


def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class LogProgress(Callback):
    """One plain line per ``every`` seconds at most (and at every generation end, and at the end):
    ``search: 12/40 candidates, best val acc 0.8812, 3m02s elapsed, eta 9m05s``."""

    def __init__(self, console: Any = None, every: float = 30.0):
        self.console = console
        self.every = every  # (0, inf) seconds between two lines
        self.best = 0.0
        self.kind = "run"
        self.t0 = time.perf_counter()
        self.done0 = 0
        self.base = 0  # candidates in the store at the last generation end
        self.seen = 0  # candidates finished since then
        self.budget0 = 0.0  # search seconds spent before this process (a resumed run)
        self.last = float("-inf")

    def _line(self, study: Any, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        done, total, unit = study.progress()
        done = max(done, self.base + self.seen)  # candidates finished inside the current generation too
        rate = (done - self.done0) / max(now - self.t0, 1e-9)
        eta = f", eta {_clock((total - done) / rate)}" if total and rate > 0 and done < total else ""
        budget = study.time_budget() if hasattr(study, "time_budget") else None
        if budget is not None and not eta:
            eta = f", {_clock(budget - (now - self.t0) - self.budget0)} of the time budget left"
        of = f"/{total}" if total else ""
        best = f", best val acc {self.best:.4f}" if self.best else ""
        units = unit if done == 1 and not total else unit + "s"
        self._emit(f"{self.kind}: {done}{of} {units}{best}, {_clock(now - self.t0)} elapsed{eta}")

    def _emit(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg, highlight=False)
        else:
            print(msg, flush=True)

    def _inside(self, cid: int, step: int, total: int) -> None:
        """A line from inside a long candidate's training, at most one per ``every`` seconds."""
        now = time.perf_counter()
        if now - self.last >= self.every and step < total:
            self.last = now
            self._emit(f"{self.kind}: candidate {cid} at step {step}/{total}, {_clock(now - self.t0)} elapsed")

    def on_study_start(self, study: Any) -> None:
        set_training_progress(self._inside)
        self.kind = getattr(type(study), "kind", None) or study.kind  # the run kind (a WeightStudy's .kind is its fitness)
        self.t0 = time.perf_counter()
        self.done0 = self.base = study.progress()[0]
        self.budget0 = float(getattr(study, "elapsed", 0.0) or 0.0)
        self._line(study, force=True)

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        if outcome.status == "COMPLETE":
            self.best = max(self.best, outcome.values.get("accuracy", 0.0))
        self.seen += 1
        self._line(study)

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        self.seen, self.base = 0, study.progress()[0]  # the store's count is exact again
        self._line(study, force=True)

    def on_study_end(self, study: Any) -> None:
        set_training_progress(None)
        self._line(study, force=True)


def make_progress(console: Any, quiet: bool = False, every: float = 30.0) -> list[Callback]:
    """The progress callbacks of a CLI run: none with ``quiet``, a Rich bar on a terminal, periodic
    log lines otherwise."""
    if quiet:
        return []
    if console is not None and getattr(console, "is_terminal", False):
        return [RichProgress(console)]
    return [LogProgress(console, every)]
