"""Callbacks: no-op hooks with state, so loggers and progress survive a resume (Lightning style)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class Callback:
    """No-op hooks a run calls (every run kind: search, prune, grow, evolve-weights).

    ``study`` is the run (:class:`evofusion.engine.run.Run`): ``kind``, ``generation``, ``next_id``,
    ``elapsed``, ``store`` and ``progress()`` are there for every kind, ``cfg`` holds its config.
    Hooks must not change the run; an exception in a hook stops the run (it is the user's code).
    ``state_dict()`` goes into every checkpoint and ``load_state_dict`` gets it back on resume, matched
    by class name, so loggers and progress bars continue where they were.
    """

    def on_study_start(self, study: Any) -> None:
        """Before the first step of ``optimize()`` (also of a resumed run)."""

    def on_generation_start(self, study: Any, generation: int, n: int) -> None:
        """A search generation of ``n`` candidates begins (search and prune runs)."""

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        """A candidate is stored (``outcome``: candidate_id, status, values, reason, seconds)."""

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        """Step ``generation`` ended and its checkpoint is written (``outcomes``: its candidates)."""

    def on_study_end(self, study: Any) -> None:
        """After the last step of ``optimize()``."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state saved in every checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (on resume)."""


class JsonlLogger(Callback):
    """Appends one JSON line per candidate and per generation to ``RUN_DIR/logs.jsonl``, and a
    ``study_start``/``study_end`` line around each ``optimize()`` (``elapsed``: the study's search
    seconds so far, carried across resumes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _write(self, rec: dict[str, Any]) -> None:
        rec["time"] = time.time()
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def on_study_start(self, study: Any) -> None:
        self._write({"event": "study_start", "generation": study.generation, "next_id": study.next_id,
                     "elapsed": study.elapsed})

    def on_study_end(self, study: Any) -> None:
        self._write({"event": "study_end", "generation": study.generation, "next_id": study.next_id,
                     "elapsed": study.elapsed})

    def on_candidate_end(self, study: Any, outcome: Any) -> None:
        self._write({"event": "candidate", "id": outcome.candidate_id, "status": outcome.status,
                     "values": outcome.values, "reason": outcome.reason, "seconds": outcome.seconds})

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None:
        self._write({"event": "generation", "generation": generation, "n": len(outcomes)})
