"""Rich progress bar over a study's candidates, with ETA."""

from __future__ import annotations

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

    def on_study_end(self, study: Any) -> None:
        self.progress.stop()
