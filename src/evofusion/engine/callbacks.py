"""Callbacks: no-op hooks with state, so loggers and progress survive a resume (Lightning style)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class Callback:
    def on_study_start(self, study: Any) -> None: ...

    def on_generation_start(self, study: Any, generation: int, n: int) -> None: ...

    def on_candidate_end(self, study: Any, outcome: Any) -> None: ...

    def on_generation_end(self, study: Any, generation: int, outcomes: list[Any]) -> None: ...

    def on_study_end(self, study: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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
