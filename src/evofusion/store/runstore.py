"""The run directory: SQLite database of every candidate, weights as safetensors, checkpoints.

Layout of a run directory::

    run.db                    SQLite: meta (config, schema version), candidates, finals
    weights/<id>.safetensors  trained weights of every COMPLETE candidate
    checkpoints/gen_00003.json  strategy + counters + RNG states after generation 3 (atomic, checksummed)
    checkpoints/gen_00003.safetensors  the checkpoint's tensors (if any); the JSON holds its sha256
    checkpoints/gen_00003.db  backup of run.db after generation 3 (the newest two are kept)
    finals/<id>.safetensors   full-data fine-tuned winners
    report.html, logs.jsonl

Every path the database stores is relative to the run directory, so a run directory can be moved,
copied or mounted elsewhere and still resume, report and export the same results (``resolve``).
A run directory is created atomically: ``run.db`` appears, complete with its meta, in one rename,
so a directory either holds no run or a resumable one, whatever moment a kill lands.

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
from evofusion.store.atomic import atomic_write_bytes, fsync_replace
from evofusion.store.integrity import (
    backup_database,
    check_database,
    file_sha256,
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
    """Owns one run directory: its database, checkpoints, backups and artifact paths.

    Contract:
        * ``RunStore(dir, create=True, meta={...})`` creates the run atomically: the database with
          its schema and every ``meta`` entry is written under a temporary name and renamed to
          ``run.db`` in one step, so a kill at any moment leaves either no run or a complete one.
          It raises RunStoreError when ``dir`` already holds a run.
        * ``RunStore(dir)`` opens an existing run (RunStoreError when there is none); ``recover=True``
          replaces a database that fails its checks by its newest valid backup (``recovered`` says
          what was repaired); ``readonly=True, lock=False`` is for readers (report, dashboard).
        * While a store is open with ``lock=True`` no other driver can open the directory.
        * Paths stored in rows are relative to the directory (``rel``); read them with ``resolve``.
        * ``write_checkpoint`` is atomic and checksummed, tensors go to a safetensors sidecar whose
          sha256 the JSON holds; ``consistent_checkpoint`` returns the newest checkpoint whose
          checksum, sidecar and database digest all verify, falling back to older ones and to
          database backups and naming what it skipped.
    """

    def __init__(self, run_dir: str | Path, *, create: bool = False, lock: bool = True,
                 readonly: bool = False, recover: bool = False, meta: dict[str, Any] | None = None):
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
        if create:
            try:
                self._create_database(db, meta or {})
            except BaseException:
                self.close()
                raise
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
            self._check_schema()
        except sqlite3.DatabaseError as e:
            self.close()
            raise RunStoreError(f"{db} is not a readable run database ({e}); it may be corrupt") from e
        except RunStoreError:
            self.close()
            raise

    def _create_database(self, db: Path, meta: dict[str, Any]) -> None:
        """Write the schema and ``meta`` under a temporary name, then rename it to ``run.db``."""
        if db.exists():  # another driver created it between our check and the lock
            raise RunStoreError(f"{self.dir} already holds a run; use `evofusion resume {self.dir}` "
                                "or choose another --run-dir")
        for old in self.dir.glob(".run.db.creating-*"):  # left by a creation killed before its rename
            old.unlink(missing_ok=True)
        tmp = self.dir / f".run.db.creating-{os.getpid()}"
        conn = sqlite3.connect(tmp)
        try:
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
                for k, v in meta.items():
                    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
        finally:
            conn.close()  # rollback journal mode: nothing is left beside the file
        fsync_replace(tmp, db)

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
        """Close the database and release the driver lock (idempotent)."""
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
        """Store ``value`` (JSON) under ``key`` in the run's meta table, replacing any old value."""
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default`` when there is none."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def kind(self) -> str:
        """The run kind (``search``, ``prune``, ``grow``, ``weights``); runs made before the kind was
        stored are searches, or pruning runs when they hold prune settings."""
        kind = self.get_meta("kind")
        if kind is not None:
            return str(kind)
        return "prune" if self.get_meta("prune") is not None else "search"

    @staticmethod
    def peek_kind(run_dir: str | Path) -> str:
        """The kind of the run in ``run_dir``, read without locking; from the newest valid database
        backup when run.db itself is damaged (resume then restores that backup). Raises RunStoreError
        when neither can be read."""
        try:
            with RunStore(run_dir, lock=False, readonly=True) as s:
                return s.kind()
        except RunStoreError:
            for b in sorted((Path(run_dir) / "checkpoints").glob("gen_*.db"), reverse=True):
                if check_database(b, SCHEMA_VERSION) is None:
                    conn = sqlite3.connect(f"file:{b}?mode=ro", uri=True)
                    try:
                        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('kind', 'prune')"))
                    finally:
                        conn.close()
                    return json.loads(rows["kind"]) if "kind" in rows else ("prune" if "prune" in rows else "search")
            raise

    def config(self) -> dict[str, Any]:
        """The config in effect now: the one the run was created with, after every recorded change."""
        history = self.get_meta("config_history") or []
        return history[-1]["config"] if history else self.get_meta("config")

    def config_history(self) -> list[dict[str, Any]]:
        """Every config change made on resume: ``{"generation", "changes", "config", "time"}``; the
        change holds from that generation on (candidates before it ran with the earlier config)."""
        return list(self.get_meta("config_history") or [])

    def record_config(self, config: dict[str, Any], generation: int, changes: list[str]) -> None:
        """Record a config change from ``generation`` on (never rewrites the creation config)."""
        history = self.config_history()
        history.append({"generation": generation, "changes": list(changes), "config": config,
                        "time": time.time()})
        self.set_meta("config_history", history)

    # --- candidates ----------------------------------------------------------------------------
    def add_candidate(self, cid: int, generation: int, genome: dict, genome_hash: str, parents: list[int],
                      operator: str | None, operator_args: dict, seed: int, status: str = "PENDING") -> None:
        """Insert (or replace, when a resumed step re-does it) candidate ``cid`` as ``status`` (PENDING
        while it trains): its genome, hash, parents, operator and arguments, seed, start time."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO candidates (id, generation, genome, genome_hash, parents, operator, "
                "operator_args, status, seed, started) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (cid, generation, json.dumps(genome), genome_hash, json.dumps(parents), operator,
                 json.dumps(operator_args), status, seed, time.time()))

    def finish_candidate(self, cid: int, status: str, values: dict, reason: str = "",
                         weights_hash: str | None = None, weights_file: str | Path | None = None,
                         train: dict | None = None, seconds: float | None = None) -> None:
        """Record a candidate's outcome; ``weights_file`` is stored relative to the run directory."""
        weights_file = self.rel(weights_file)
        with self.conn:
            self.conn.execute(
                "UPDATE candidates SET status=?, objective_values=?, reason=?, weights_hash=?, weights_file=?, "
                "train=?, seconds=?, finished=? WHERE id=?",
                (status, json.dumps(values), reason, weights_hash, weights_file, json.dumps(train or {}),
                 seconds, time.time(), cid))

    def candidate(self, cid: int) -> dict[str, Any] | None:
        """Candidate ``cid`` as a dict (JSON columns decoded), or None."""
        row = self.conn.execute("SELECT * FROM candidates WHERE id=?", (cid,)).fetchone()
        return None if row is None else _row_to_dict(row)

    def candidates(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every candidate (of ``status``), by id."""
        q, args = "SELECT * FROM candidates", ()
        if status is not None:
            q, args = q + " WHERE status=?", (status,)
        return [_row_to_dict(r) for r in self.conn.execute(q + " ORDER BY id", args)]

    def count(self, status: str | None = None) -> int:
        """How many candidates (of ``status``) the run has."""
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM candidates").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM candidates WHERE status=?", (status,)).fetchone()[0])

    # --- finals --------------------------------------------------------------------------------
    def add_final(self, cid: int, val_accuracy: float, test_accuracy: float, values: dict,
                  weights_file: str | Path, weights_hash: str, seconds: float, train: dict) -> None:
        """Record a fine-tuned winner; ``weights_file`` is stored relative to the run directory."""
        weights_file = self.rel(weights_file)
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO finals VALUES (?,?,?,?,?,?,?,?)",
                              (cid, val_accuracy, test_accuracy, json.dumps(values), weights_file,
                               weights_hash, seconds, json.dumps(train)))

    def finals(self) -> list[dict[str, Any]]:
        """Every fine-tuned winner (``add_final`` rows), by candidate id."""
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
        """One architecture change of a grow run (see ``ensure_growth_tables``)."""
        with self.conn:
            self.conn.execute(
                "INSERT INTO growth_events (step, operator, params_before, params_after, acc_before, acc_after, "
                "info, genome_before, genome_after, preserves_function, damage, candidate_id, seconds) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (step, operator, params_before, params_after, acc_before, acc_after, json.dumps(info),
                 genome_before, genome_after, int(preserves_function), json.dumps(damage), candidate_id, seconds))

    def add_growth_point(self, step: int, params: int, val_accuracy: float, train_flops: float,
                         seconds: float) -> None:
        """One evaluation of a grow run's live student (params, val accuracy, training FLOPs so far)."""
        with self.conn:
            self.conn.execute("INSERT INTO growth_curve (step, params, val_accuracy, train_flops, seconds) "
                              "VALUES (?,?,?,?,?)", (step, params, val_accuracy, train_flops, seconds))

    def growth_curve(self) -> list[dict[str, Any]]:
        """The grow run's evaluations by step ([] for other kinds)."""
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
        """Where candidate ``cid``'s weights (``final``: its fine-tuned weights) go in this run."""
        return self.dir / ("finals" if final else "weights") / f"{cid}.safetensors"

    def rel(self, path: str | Path | None) -> str | None:
        """``path`` as stored in the database: relative to the run directory when inside it."""
        if path is None or str(path) == "":
            return None if path is None else ""
        p = Path(path)
        if not p.is_absolute():
            if (self.dir / p).exists():  # already relative to the run directory
                return p.as_posix()
            p = p.absolute()  # relative to the working directory (a run directory given relatively)
        for base in {self.dir.absolute(), self.dir.resolve()}:
            try:
                return p.relative_to(base).as_posix()
            except ValueError:
                continue
        return str(p)

    def resolve(self, stored: str | Path | None) -> Path | None:
        """The file a stored path names in *this* run directory, or None when there is none.

        Relative paths are taken from the run directory. An absolute path (runs made before paths
        were relative) is mapped to the same ``<folder>/<file>`` in this directory first, so a moved
        or copied run never reads another run's files; it is used as given only when that is absent.
        """
        if stored is None or str(stored) == "":
            return None
        p = Path(stored)
        if not p.is_absolute():
            return self.dir / p
        local = self.dir / p.parent.name / p.name
        if local.exists():
            return local
        return p if p.exists() else local

    # --- checkpoints ---------------------------------------------------------------------------
    def write_checkpoint(self, generation: int, state: dict[str, Any], tensors: dict[str, Any] | None = None,
                         keep: int | None = None) -> Path:
        """Write ``checkpoints/gen_NNNNN.json`` atomically, with a checksum over its canonical JSON.

        ``tensors`` (name -> CPU tensor) go to ``gen_NNNNN.safetensors``, written first; the JSON
        names the file and holds its sha256, so a damaged or swapped sidecar is caught on resume.
        ``keep``: delete all but the newest ``keep`` checkpoints (None keeps every one).
        """
        folder = self.dir / "checkpoints"
        path = folder / f"gen_{generation:05d}.json"
        body_state = {"schema_version": SCHEMA_VERSION, "generation": generation, **state}
        if tensors:
            from safetensors.torch import save as st_save  # torch only where a run has tensors

            data = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
            side = folder / f"gen_{generation:05d}.safetensors"
            atomic_write_bytes(side, data)
            body_state["tensors"] = {"file": side.name, "sha256": hashlib.sha256(data).hexdigest()}
        # serialized once: the checksum is the sha256 of the canonical (sorted-key) JSON of everything else
        body = json.dumps(body_state, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()
        atomic_write_bytes(path, f'{body[:-1]}, "checksum": "{digest}"}}'.encode())
        if keep is not None:
            for old in sorted(folder.glob("gen_*.json"))[:-keep]:
                old.unlink(missing_ok=True)
                old.with_suffix(".safetensors").unlink(missing_ok=True)
        return path

    def latest_checkpoint(self, max_generation: int | None = None) -> tuple[dict[str, Any] | None, list[str]]:
        """Newest checkpoint that parses, matches its checksum and whose tensor sidecar (if any)
        matches its sha256 (at most ``max_generation``); also returns warnings naming every
        unreadable one skipped."""
        warnings = []
        for path in sorted((self.dir / "checkpoints").glob("gen_*.json"), reverse=True):
            try:
                state = json.loads(path.read_text())
                if not isinstance(state, dict) or state.get("schema_version") != SCHEMA_VERSION \
                        or not isinstance(state.get("generation"), int):
                    raise ValueError("wrong schema version or missing fields")
                verify_checksum(state)
                if max_generation is not None and state["generation"] > max_generation:
                    continue
                side = state.get("tensors")
                if isinstance(side, dict):
                    f = path.parent / side["file"]
                    if not f.exists():
                        raise ValueError(f"its tensors file {f.name} is missing")
                    if file_sha256(f) != side["sha256"]:
                        raise ValueError(f"its tensors file {f.name} does not match the sha256 it holds")
                return state, warnings
            except (ValueError, OSError, KeyError, TypeError) as e:
                warnings.append(f"checkpoint {path} is unreadable ({e}); falling back to an older one")
        return None, warnings

    def checkpoint_tensors(self, state: dict[str, Any] | None) -> dict[str, Any]:
        """The tensors of a checkpoint returned by ``latest_checkpoint`` ({} when it has none)."""
        side = (state or {}).get("tensors")
        if not side:
            return {}
        from safetensors.torch import load as st_load

        name = side["file"] if isinstance(side, dict) else side
        return st_load((self.dir / "checkpoints" / name).read_bytes())

    def consistent_checkpoint(self) -> tuple[dict[str, Any] | None, list[str]]:
        """The newest valid checkpoint whose candidate rows the database reproduces (its ``db_digest``);
        a database that does not is replaced by its newest valid backup and the matching checkpoint
        used. Returns the state (None: start from the beginning) and warnings naming what was skipped."""
        warnings = list(self.recovered)
        state, w = self.latest_checkpoint(self.restored_generation)
        warnings += w
        while state is not None and "db_digest" in state \
                and self.rows_digest(state["next_id"]) != state["db_digest"]:
            reason = (f"its candidate rows differ from the digest in checkpoint gen_{state['generation']:05d}.json "
                      "(a damaged row)")
            before = len(self.recovered)
            gen = self.restore_backup(reason)
            warnings += self.recovered[before:]
            state, w = self.latest_checkpoint(gen)
            warnings += w
        return state, warnings

    # --- integrity (evofusion.store.integrity) -------------------------------------------------
    def rows_digest(self, below_id: int) -> str:
        """sha256 over the candidate rows with id < ``below_id`` (what a checkpoint's ``db_digest`` covers)."""
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
