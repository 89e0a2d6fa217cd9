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
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from evofusion.errors import RunStoreError
from evofusion.store.atomic import atomic_write_bytes
from evofusion.store.integrity import (
    backup_database,
    check_database,
    rows_digest,
    verify_checksum,
)

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

_GROWTH_SCHEMA = """
CREATE TABLE IF NOT EXISTS growth_events (
    step INTEGER NOT NULL,
    operator TEXT NOT NULL,
    params_before INTEGER NOT NULL,
    params_after INTEGER NOT NULL,
    acc_before REAL,
    acc_after REAL,
    info TEXT NOT NULL DEFAULT '{}',
    genome_before TEXT,
    genome_after TEXT,
    preserves_function INTEGER NOT NULL DEFAULT 1,
    damage TEXT NOT NULL DEFAULT '{}',
    candidate_id INTEGER,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS growth_curve (
    step INTEGER NOT NULL,
    params INTEGER NOT NULL,
    val_accuracy REAL,
    train_flops REAL,
    seconds REAL
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
                 readonly: bool = False, recover: bool = False):
        self.dir = Path(run_dir)
        self._lock_fd: int | None = None
        self.recovered: list[str] = []  # what recover=True repaired (see evofusion.store.integrity)
        self.restored_generation: int | None = None  # generation of the backup that replaced run.db
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
            if recover and not create:
                bad = check_database(db, SCHEMA_VERSION)
                if bad is not None:
                    self._restore_backup(bad)
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

    # --- growth (evofusion.growth) ---------------------------------------------------------------
    def ensure_growth_tables(self) -> None:
        """Create the tables of an online-growth run (a no-op when they exist). ``growth_events``:
        one row per architecture change; ``growth_curve``: params and val accuracy over training."""
        with self.conn:
            self.conn.executescript(_GROWTH_SCHEMA)

    def add_growth_event(self, step: int, operator: str, params_before: int, params_after: int,
                         acc_before: float, acc_after: float, info: dict, genome_before: str,
                         genome_after: str, preserves_function: bool, damage: dict, candidate_id: int,
                         seconds: float) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO growth_events (step, operator, params_before, params_after, acc_before, acc_after, "
                "info, genome_before, genome_after, preserves_function, damage, candidate_id, seconds) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (step, operator, params_before, params_after, acc_before, acc_after, json.dumps(info),
                 genome_before, genome_after, int(preserves_function), json.dumps(damage), candidate_id, seconds))

    def add_growth_point(self, step: int, params: int, val_accuracy: float, train_flops: float,
                         seconds: float) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO growth_curve (step, params, val_accuracy, train_flops, seconds) "
                              "VALUES (?,?,?,?,?)", (step, params, val_accuracy, train_flops, seconds))

    def growth_curve(self) -> list[dict[str, Any]]:
        if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='growth_curve'"
                             ).fetchone() is None:
            return []
        return [dict(r) for r in self.conn.execute("SELECT * FROM growth_curve ORDER BY step, rowid")]

    def truncate_growth(self, after_step: int, after_candidate: int) -> None:
        """Forget growth rows and candidates written after a checkpoint (resume re-does them)."""
        with self.conn:
            self.conn.execute("DELETE FROM growth_events WHERE step > ?", (after_step,))
            self.conn.execute("DELETE FROM growth_curve WHERE step > ?", (after_step,))
            self.conn.execute("DELETE FROM candidates WHERE id > ?", (after_candidate,))
            self.conn.execute("DELETE FROM finals")

    # --- files ---------------------------------------------------------------------------------
    def weights_path(self, cid: int, final: bool = False) -> Path:
        return self.dir / ("finals" if final else "weights") / f"{cid}.safetensors"

    # --- checkpoints ---------------------------------------------------------------------------
    def write_checkpoint(self, generation: int, state: dict[str, Any]) -> Path:
        path = self.dir / "checkpoints" / f"gen_{generation:05d}.json"
        # serialized once: the checksum is the sha256 of the canonical (sorted-key) JSON of everything else
        body = json.dumps({"schema_version": SCHEMA_VERSION, "generation": generation, **state}, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()
        atomic_write_bytes(path, f'{body[:-1]}, "checksum": "{digest}"}}'.encode())
        return path

    def latest_checkpoint(self, max_generation: int | None = None) -> tuple[dict[str, Any] | None, list[str]]:
        """Newest checkpoint that parses and matches its checksum (at most ``max_generation``); also
        returns warnings naming every unreadable one skipped."""
        warnings = []
        for path in sorted((self.dir / "checkpoints").glob("gen_*.json"), reverse=True):
            try:
                state = json.loads(path.read_text())
                if not isinstance(state, dict) or state.get("schema_version") != SCHEMA_VERSION \
                        or "strategy" not in state:
                    raise ValueError("wrong schema version or missing fields")
                verify_checksum(state)
                if max_generation is not None and state["generation"] > max_generation:
                    continue
                return state, warnings
            except (ValueError, OSError) as e:
                warnings.append(f"checkpoint {path} is unreadable ({e}); falling back to an older one")
        return None, warnings

    # --- integrity (evofusion.store.integrity) -------------------------------------------------
    def rows_digest(self, below_id: int) -> str:
        return rows_digest(self.conn, below_id)

    def backup(self, generation: int) -> Path:
        """Copy the database to ``checkpoints/gen_XXXXX.db`` (the fallback of a corrupt run.db)."""
        return backup_database(self.conn, self.dir / "checkpoints", generation)

    def evaluated_hashes(self) -> set[str]:
        """Genome hashes of every COMPLETE candidate (re-evaluations of those run first)."""
        return {r[0] for r in self.conn.execute("SELECT genome_hash FROM candidates WHERE status='COMPLETE'")}

    def _restore_backup(self, reason: str) -> int:
        """Move the damaged database aside and put the newest valid backup in its place; return the
        backup's generation. Raises RunStoreError naming the file when no backup is valid."""
        db = self.dir / "run.db"
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None  # type: ignore[assignment]
        for b in sorted((self.dir / "checkpoints").glob("gen_*.db"), reverse=True):
            if check_database(b, SCHEMA_VERSION) is not None:
                self.recovered.append(f"database backup {b} is damaged too; trying an older one")
                continue
            (self.dir / "corrupt").mkdir(exist_ok=True)
            aside = Path(tempfile.mkdtemp(dir=self.dir / "corrupt", prefix=time.strftime("%Y%m%d-%H%M%S-")))
            for suffix in ("", "-wal", "-shm"):
                f = self.dir / f"run.db{suffix}"
                if f.exists():
                    os.replace(f, aside / f.name)
            tmp = self.dir / ".run.db.restore.tmp"
            shutil.copyfile(b, tmp)
            os.replace(tmp, db)
            gen = int(b.stem.split("_")[1])
            self.recovered.append(f"{db} is corrupt ({reason}); moved it to {aside} and restored the backup "
                                  f"of generation {gen} ({b.name}); the run resumes from generation {gen}")
            self.restored_generation = gen
            return gen
        raise RunStoreError(f"{db} is corrupt ({reason}) and no valid backup exists in {self.dir / 'checkpoints'}")

    def restore_backup(self, reason: str) -> int:
        """Replace a database found inconsistent after opening (e.g. digest mismatch) by its backup."""
        gen = self._restore_backup(reason)
        self.conn = sqlite3.connect(self.dir / "run.db", timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.row_factory = sqlite3.Row
        self._check_schema()
        return gen
