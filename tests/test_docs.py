"""Every shell and Python block of README.md and docs/*.md runs, on digits, so the docs cannot drift.

The blocks of one file run in order in one fresh working directory (``examples/`` copied in), so a
later block sees the runs an earlier one made, as a reader following the page would. Before running,
each block is rewritten the same way (``rewrite``): the bundled 8x8 digits stand in for Fashion-MNIST,
a genome's ``input_size`` 28 becomes 8,
budgets shrink (generations, population, steps, epochs, seconds), `source .venv/bin/activate` is
dropped (this interpreter's environment is on PATH) and a dashboard runs for a few seconds, then gets
Ctrl-C. A block that cannot run here says so in the page, on the line before its fence::

    <!-- docs-test: skip: needs a Ray cluster at 10.0.0.5 -->

and the test refuses a skip without a reason, so a new block is either run or explained.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<why>[^>]*?)\s*-->")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None  # the reason, or None: the block runs


def blocks(page: Path) -> list[Block]:
    """The fenced bash / python blocks of a page (indented ones in lists included)."""
    out, lines = [], page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        if lang in ("bash", "python"):
            code = "\n".join(x[indent:] if x[:indent].strip() == "" else x for x in lines[start + 1:j])
            prev = "\n".join(lines[max(0, start - 2):start])
            sk = SKIP.search(prev)
            out.append(Block(page, start + 1, lang, code, sk.group("why") if sk else None))
        i = j + 1
    return out


def _cap(pattern: str, cap: float, text: str, fmt: str = "{}") -> str:
    def sub(m: re.Match) -> str:
        v = float(m.group(2))
        v = min(v, cap)
        return m.group(1) + fmt.format(int(v) if v == int(v) else v)
    return re.sub(pattern, sub, text)


def rewrite(b: Block) -> str:
    """The block as the test runs it: digits for Fashion-MNIST, small budgets (see the module doc)."""
    s = b.code.replace("fashion-mnist", "digits")
    s = re.sub(r'("input_size": |input_size=)28\b', r"\g<1>8", s)  # Fashion-MNIST's 28x28 -> digits' 8x8
    if b.lang == "bash":
        s = re.sub(r"^\s*source \.venv/bin/activate\s*$", "", s, flags=re.M)
        for flag, cap in (("--generations", 2), ("--population", 4), ("--steps", 30), ("--epochs", 1),
                          ("--final-epochs", 1), ("--max-seconds", 20), ("--grow-every", 15), ("--limit", 400),
                          ("--top-k", 2), ("--final-seconds", 10)):
            s = _cap(rf"({flag}[ =])(\d+(?:\.\d+)?)", cap, s)
        s = re.sub(r"--rungs [\d,]+", "--rungs 10,30", s)
        s = re.sub(r"(?m)^(\s*)evofusion dashboard (\S+)(.*)$",
                   r"\1timeout --preserve-status -s INT 6 evofusion dashboard \2 --no-open --port 0\3", s)
        return "set -eo pipefail\n" + s
    for key, cap in (("generations", 2), ("population", 4), ("steps", 30), ("epochs", 1), ("grow_every", 15)):
        s = _cap(rf'("{key}":\s*)(\d+(?:\.\d+)?)', cap, s)
    return s


def rewrite_yaml(text: str) -> str:
    """An example config as the test runs it: the same substitutions as ``rewrite``."""
    s = text.replace("fashion-mnist", "digits")
    for key, cap in (("generations", 2), ("population", 4), ("steps", 30), ("epochs", 1)):
        s = _cap(rf"(?m)(^\s*{key}:\s*)(\d+(?:\.\d+)?)", cap, s)
    return s


def workdir(tmp: Path) -> Path:
    """A fresh working directory holding the repository's examples (rewritten) and benchmarks."""
    work = tmp / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    shutil.copytree(ROOT / "benchmarks", work / "benchmarks")
    for y in (work / "examples").glob("*.yaml"):
        y.write_text(rewrite_yaml(y.read_text()))
    return work


ALL = [b for p in PAGES for b in blocks(p)]


def test_every_block_is_run_or_says_why_not() -> None:
    assert len(ALL) >= 20  # the parser found the pages' blocks
    for b in ALL:
        assert b.skip is None or len(b.skip) >= 10, f"{b.page.name}:{b.line}: a skip needs its reason"
    ran = [b for b in ALL if b.skip is None]
    assert len(ran) >= 0.7 * len(ALL), [f"{b.page.name}:{b.line} {b.skip}" for b in ALL if b.skip]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    e = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
         "EVOFUSION_CACHE": str(tmp_path_factory.mktemp("docs-cache")), "COLUMNS": "120",
         "PYTHONPATH": str(ROOT / "src")}
    e.pop("RAY_ADDRESS", None)
    return e


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_blocks_run(page: Path, env: dict[str, str], tmp_path: Path) -> None:
    todo = [b for b in blocks(page) if b.skip is None]
    if not todo:
        pytest.skip(f"{page.name} has no runnable block")
    work = workdir(tmp_path)
    for b in todo:
        code = rewrite(b)
        cmd = ["bash", "-c", code] if b.lang == "bash" else [sys.executable, "-c", code]
        p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, (f"{page.name}:{b.line} ({b.lang}) exited {p.returncode}\n--- as run:\n{code}\n"
                                   f"--- stdout:\n{p.stdout[-3000:]}\n--- stderr:\n{p.stderr[-3000:]}")
