from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from evofusion.store import SCHEMA_VERSION, RunStore
from evofusion.store.integrity import check_database, checksum, is_disk_error, verify_checksum


def test_checksum_catches_any_change() -> None:
    state = {"generation": 2, "strategy": {"x": [1.5, 2.0]}}
    state["checksum"] = checksum(state)
    verify_checksum(state)
    with pytest.raises(ValueError, match="checksum mismatch"):
        verify_checksum({**state, "generation": 3})
    with pytest.raises(ValueError, match="no checksum"):
        verify_checksum({"generation": 2})


def test_backups_keep_the_two_newest_and_are_valid(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r", create=True) as s:
        for g in range(1, 5):
            s.add_candidate(g, g, {"g": g}, f"h{g}", [], None, {}, seed=g)
            s.backup(g)
        names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("gen_*.db"))
        assert names == ["gen_00003.db", "gen_00004.db"]
        assert check_database(tmp_path / "r" / "checkpoints" / "gen_00004.db", SCHEMA_VERSION) is None
        assert s.rows_digest(3) != s.rows_digest(4)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 4096)
    assert "DatabaseError" in check_database(bad, SCHEMA_VERSION)
    assert check_database(tmp_path / "r" / "run.db", SCHEMA_VERSION + 1).startswith("schema version")


def test_disk_errors_are_recognized() -> None:
    assert is_disk_error(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_error(OSError(errno.EROFS, "Read-only file system"))
    assert is_disk_error(sqlite3.OperationalError("database or disk is full"))
    assert not is_disk_error(OSError(errno.ENOENT, "No such file"))
    assert not is_disk_error(sqlite3.OperationalError("no such table: x"))
