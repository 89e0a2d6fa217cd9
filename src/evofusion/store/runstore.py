"""The run directory: SQLite database of every candidate, weights as safetensors, checkpoints.

Layout of a run directory::

    run.db                    SQLite: meta (config, schema version), candidates, finals
    weights/<id>.safetensors  trained weights of every COMPLETE candidate
    checkpoints/gen_00003.json  strategy + counters + RNG states after generation 3 (atomic)
    finals/<id>.safetensors   full-data fine-tuned winners
    report.html, logs.jsonl

Only one driver may use a run directory at a time (an exclusive ``flock`` on ``driver.lock``);
readers (report, dashboard) open the database read-only and never block the writer (WAL mode).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from evofusion.errors import RunStoreError
from evofusion.store.atomic import atomic_write_json

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    genome TEXT NOT NULL,
    genome_hash TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    operator TEXT,
    operator_args TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    objective_values TEXT NOT NULL DEFAULT '{}',
    seed INTEGER NOT NULL,
    weights_hash TEXT,
    weights_file TEXT,
    train TEXT NOT NULL DEFAULT '{}',
    started REAL,
    finished REAL,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS finals (
    candidate_id INTEGER PRIMARY KEY,
    val_accuracy REAL,
    test_accuracy REAL,
    objective_values TEXT NOT NULL DEFAULT '{}',
    weights_file TEXT,
    weights_hash TEXT,
    seconds REAL,
    train TEXT NOT NULL DEFAULT '{}'
);
"""


def _row_to_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for k in ("genome", "parents", "operator_args", "objective_values", "train"):
        if k in d and d[k] is not None:
            d[k] = json.loads(d[k])
    return d


class RunStore:
    """Owns one run directory. ``RunStore.open(dir, create=..., lock=...)``."""

    def __init__(self, run_dir: str | Path, *, create: bool = False, lock: bool = True,
                 readonly: bool = False):
        self.dir = Path(run_dir)
        self._lock_fd: int | None = None
        db = self.dir / "run.db"
        if create:
            if db.exists():
                raise RunStoreError(f"{self.dir} already holds a run; use `evofusion resume {self.dir}` "
                                    "or choose another --run-dir")
            self.dir.mkdir(parents=True, exist_ok=True)
        elif not db.exists():
            raise RunStoreError(f"{self.dir} holds no run (no run.db); start one with `evofusion search`")
        if lock:
            self._acquire_lock()
        try:
            if readonly:
                self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, check_same_thread=False)
            else:
                self.conn = sqlite3.connect(db, timeout=30, check_same_thread=False)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.row_factory = sqlite3.Row
            if create:
                with self.conn:
                    self.conn.executescript(_SCHEMA)
                    self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self.conn.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
            self._check_schema()
        except sqlite3.DatabaseError as e:
            self.close()
            raise RunStoreError(f"{db} is not a readable run database ({e}); it may be corrupt") from e
        except RunStoreError:
            self.close()
            raise

    # --- locking -------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        path = self.dir / "driver.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode().strip() or "?"
            finally:
                os.close(fd)
            raise RunStoreError(f"another driver (pid {holder}) is using {self.dir}; wait for it to finish "
                                "or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def close(self) -> None:
        try:
            if getattr(self, "conn", None) is not None:
                self.conn.close()
        except Exception:
            pass
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = None if row is None else row[0]
            raise RunStoreError(f"{self.dir / 'run.db'} has schema version {found}, this EvoFusion "
                                f"reads version {SCHEMA_VERSION}")

    # --- meta ----------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # --- candidates ----------------------------------------------------------------------------
    def add_candidate(self, cid: int, generation: int, genome: dict, genome_hash: str, parents: list[int],
                      operator: str | None, operator_args: dict, seed: int, status: str = "PENDING") -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO candidates (id, generation, genome, genome_hash, parents, operator, "
                "operator_args, status, seed, started) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (cid, generation, json.dumps(genome), genome_hash, json.dumps(parents), operator,
                 json.dumps(operator_args), status, seed, time.time()))

    def finish_candidate(self, cid: int, status: str, values: dict, reason: str = "",
                         weights_hash: str | None = None, weights_file: str | None = None,
                         train: dict | None = None, seconds: float | None = None) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE candidates SET status=?, objective_values=?, reason=?, weights_hash=?, weights_file=?, "
                "train=?, seconds=?, finished=? WHERE id=?",
                (status, json.dumps(values), reason, weights_hash, weights_file, json.dumps(train or {}),
                 seconds, time.time(), cid))

    def candidate(self, cid: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM candidates WHERE id=?", (cid,)).fetchone()
        return None if row is None else _row_to_dict(row)

    def candidates(self, status: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM candidates", ()
        if status is not None:
            q, args = q + " WHERE status=?", (status,)
        return [_row_to_dict(r) for r in self.conn.execute(q + " ORDER BY id", args)]

    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM candidates").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM candidates WHERE status=?", (status,)).fetchone()[0])

    # --- finals --------------------------------------------------------------------------------
    def add_final(self, cid: int, val_accuracy: float, test_accuracy: float, values: dict,
                  weights_file: str, weights_hash: str, seconds: float, train: dict) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO finals VALUES (?,?,?,?,?,?,?,?)",
                              (cid, val_accuracy, test_accuracy, json.dumps(values), weights_file,
                               weights_hash, seconds, json.dumps(train)))

    def finals(self) -> list[dict[str, Any]]:
        return [_row_to_dict(r) for r in self.conn.execute("SELECT * FROM finals ORDER BY candidate_id")]

    # --- files ---------------------------------------------------------------------------------
    def weights_path(self, cid: int, final: bool = False) -> Path:
        return self.dir / ("finals" if final else "weights") / f"{cid}.safetensors"

    # --- checkpoints ---------------------------------------------------------------------------
    def write_checkpoint(self, generation: int, state: dict[str, Any]) -> Path:
        path = self.dir / "checkpoints" / f"gen_{generation:05d}.json"
        atomic_write_json(path, {"schema_version": SCHEMA_VERSION, "generation": generation, **state})
        return path

    def latest_checkpoint(self) -> tuple[dict[str, Any] | None, list[str]]:
        """Newest checkpoint that parses; also returns warnings naming every unreadable one skipped."""
        warnings = []
        for path in sorted((self.dir / "checkpoints").glob("gen_*.json"), reverse=True):
            try:
                state = json.loads(path.read_text())
                if state.get("schema_version") != SCHEMA_VERSION or "strategy" not in state:
                    raise ValueError("wrong schema version or missing fields")
                return state, warnings
            except (ValueError, OSError) as e:
                warnings.append(f"checkpoint {path} is unreadable ({e}); falling back to an older one")
        return None, warnings
