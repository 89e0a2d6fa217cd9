"""Detecting corruption in a run directory and falling back to the newest valid generation.

- Every checkpoint carries a ``checksum`` (sha256 of its canonical JSON), so a flipped byte that still
  parses as JSON is caught, not only a truncated file.
- Every checkpoint carries ``db_digest``: a sha256 over the finished candidate rows it covers (ids below
  its ``next_id``). On resume the database must reproduce it; a flipped byte inside a row's values
  (which SQLite itself does not notice: it keeps no page checksums) is caught this way.
- After every checkpoint the database is copied (SQLite backup API, then an atomic rename) to
  ``checkpoints/gen_XXXXX.db``; the two newest copies are kept. A database that cannot be opened,
  fails ``PRAGMA quick_check``, has the wrong schema version or misses its digest is moved to
  ``corrupt/`` and the newest valid copy takes its place; the search resumes from that copy's
  generation and re-runs the rest (candidates are deterministic, so nothing is lost).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from evofusion.store.atomic import fsync_replace

KEEP_DB_BACKUPS = 2
DISK_ERRNOS = {13, 28, 30, 122}  # EACCES, ENOSPC, EROFS, EDQUOT
_SQLITE_DISK_WORDS = ("disk is full", "readonly database", "disk i/o error", "read-only file system",
                      "no space left")


def checksum(state: dict[str, Any]) -> str:
    body = {k: v for k, v in state.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def verify_checksum(state: dict[str, Any]) -> None:
    """Raise ValueError unless ``state['checksum']`` matches its content."""
    if "checksum" not in state:
        raise ValueError("no checksum")
    if state["checksum"] != checksum(state):
        raise ValueError("checksum mismatch (the file was modified or damaged)")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (checkpoint sidecars, weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rows_digest(conn: sqlite3.Connection, below_id: int) -> str:
    """sha256 over the finished candidate rows with id < below_id (what a checkpoint covers)."""
    h = hashlib.sha256()
    for row in conn.execute("SELECT id, genome_hash, status, objective_values, weights_hash, reason, parents "
                            "FROM candidates WHERE id < ? ORDER BY id", (below_id,)):
        h.update(json.dumps(list(row)).encode())
    return h.hexdigest()


def check_database(path: Path, schema_version: int) -> str | None:
    """None if ``path`` is a readable run database of this schema, else the reason it is not."""
    if not path.exists():
        return "missing"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                return f"quick_check: {ok}"
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or int(row[0]) != schema_version:
                return f"schema version {None if row is None else row[0]}, expected {schema_version}"
        finally:
            conn.close()
    except (sqlite3.DatabaseError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def backup_database(conn: sqlite3.Connection, folder: Path, generation: int) -> Path:
    """Copy the live database to ``folder/gen_XXXXX.db`` atomically; keep the newest copies only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gen_{generation:05d}.db"
    tmp = folder / f".gen_{generation:05d}.db.tmp"
    if tmp.exists():
        tmp.unlink()
    dst = sqlite3.connect(tmp)
    try:
        conn.backup(dst)
    finally:
        dst.close()
    fsync_replace(tmp, path)
    for old in sorted(folder.glob("gen_*.db"))[:-KEEP_DB_BACKUPS]:
        old.unlink(missing_ok=True)
    return path


def is_disk_error(e: BaseException) -> bool:
    """True for a full, read-only or failing disk (OSError errno or SQLite's wording)."""
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
        return True
    if isinstance(e, sqlite3.OperationalError):
        return any(w in str(e).lower() for w in _SQLITE_DISK_WORDS)
    return False
