"""Fixtures for the report and dashboard tests: a finished tiny run, headless Chromium, PNG pixels."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evofusion import Study
from tests.conftest import tiny_config

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory of a finished tiny search (2 generations x 4, one final fine-tune)."""
    run = tmp_path_factory.mktemp("viz") / "run"
    study = Study.create(tiny_config(), run, log=lambda *_: None)
    try:
        study.optimize()
        study.finalize(log=lambda *_: None)
    finally:
        study.close()
    return run


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``finished_run`` a test may change."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def add_growth_events(run: Path, events: list[tuple]) -> None:
    """What the online-growth feature will write: rows of ``growth_events``."""
    import sqlite3

    conn = sqlite3.connect(run / "run.db")
    with conn:
        conn.execute("CREATE TABLE IF NOT EXISTS growth_events (step INTEGER, operator TEXT, params_before "
                     "INTEGER, params_after INTEGER, acc_before REAL, acc_after REAL)")
        conn.executemany("INSERT INTO growth_events VALUES (?,?,?,?,?,?)", events)
    conn.close()


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[object]:
    """Debian's headless Chromium through selenium; skipped when either is missing. Selenium Manager
    is never asked for a driver (explicit binary and chromedriver paths), so nothing is downloaded."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1700", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def png_pixels(png: bytes) -> np.ndarray:
    """(h, w, 3) uint8 pixels of a PNG: PIL when installed, else a decoder for the 8-bit RGB(A)
    non-interlaced PNGs Chromium writes."""
    try:
        import io

        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    except ImportError:
        pass
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(png):
        (n,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, "unsupported PNG"
            ch = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), w * ch
    out = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # sub: a running sum along the row, per channel, mod 256
            cur = (np.cumsum(line.reshape(-1, ch), axis=0) & 0xFF).reshape(-1)
        elif f == 2:
            cur = (line + prev) & 0xFF
        else:  # average, Paeth: pixel by pixel
            cur = np.zeros(stride, dtype=np.int32)
            for x in range(stride):
                a, b, c = (cur[x - ch] if x >= ch else 0), prev[x], (prev[x - ch] if x >= ch else 0)
                if f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[x] = (line[x] + pred) & 0xFF
        out[y], prev = cur, cur
    return out.reshape(h, w, ch)[:, :, :3].astype(np.uint8)


def count_near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """Pixels within ``tol`` (per channel) of ``rgb``."""
    return int((np.abs(img.astype(int) - np.array(rgb)).max(axis=2) <= tol).sum())


def distinct_colours(img: np.ndarray) -> int:
    flat = img.reshape(-1, 3).astype(np.int64)
    return int(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]).size)
