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
    def __init__(self, console: Any = None):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)
        self.task: Any = None
        self.best = 0.0

    def on_study_start(self, study: Any) -> None:
        c = study.cfg
        total = c.generations * c.strategy.population
        if c.max_evaluations is not None:
            total = min(total, c.max_evaluations)
        self.progress.start()
        self.task = self.progress.add_task("search", total=total, completed=min(study.next_id, total))

    def on_generation_start(self, study: Any, generation: int, n: int) -> None:
        self.progress.update(self.task, description=f"generation {generation}  best val acc {self.best:.4f}")

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        if outcome.status == "COMPLETE":
            self.best = max(self.best, outcome.values.get("accuracy", 0.0))
        self.progress.advance(self.task)

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        self.progress.update(self.task, completed=study.next_id,
                             description=f"generation {generation + 1}  best val acc {self.best:.4f}")

    def on_study_end(self, study: Any) -> None:
        self.progress.stop()
