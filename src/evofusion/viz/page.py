"""The page the dashboard serves and report.html freezes: its HTML, CSS and JavaScript are package
data files (``viz/assets/dashboard.{html,css,js}``); this module fills them in."""

from __future__ import annotations

import html
import json
import math
import time
from functools import lru_cache
from importlib.resources import files
from typing import Any

_PLOTLY_JS: str | None = None


def plotly_js() -> str:
    """plotly.js (minified) from the installed plotly package, read once."""
    global _PLOTLY_JS
    if _PLOTLY_JS is None:
        from plotly.offline import get_plotlyjs

        _PLOTLY_JS = get_plotlyjs()
    return _PLOTLY_JS


def to_json(obj: Any) -> str:
    """Strict JSON (non-finite floats become null, so the browser's JSON.parse accepts it)."""

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), allow_nan=False, separators=(",", ":"))


def script_safe_json(obj: Any) -> str:
    """JSON to embed in a ``<script>``: ``<``, ``>`` and ``&`` as ``\\u003c``-style escapes (inside JSON
    strings, the only place they can occur), so no run-directory or teacher name such as
    ``<!--<script>`` or ``</script>`` can end the script or switch the HTML parser's state."""
    return (to_json(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


@lru_cache(maxsize=8)
def asset(name: str) -> str:
    """A file of ``evofusion/viz/assets`` (package data), read once."""
    return files("evofusion.viz").joinpath("assets", name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any] | None, *, poll_seconds: float = 2.0, title: str = "EvoFusion",
                plotly_src: str | None = None) -> str:
    """The dashboard page. ``data=None``: live, plotly.js from ``/plotly.min.js`` and ``/api/data`` polled
    every ``poll_seconds``. Otherwise static: ``data`` embedded as JSON and plotly.js inlined (no
    ``<script src=``), or loaded from the relative URL ``plotly_src`` (a file beside the page)."""
    live = data is None
    if live:
        head_js = '<script src="/plotly.min.js"></script>'
        boot = f"const LIVE = true, POLL_MS = {int(poll_seconds * 1000)}, EMBEDDED = null;"
        written = ""
    else:
        head_js = f'<script src="{html.escape(plotly_src)}"></script>' if plotly_src else f"<script>{plotly_js()}</script>"
        embedded = script_safe_json(data)
        boot = f"const LIVE = false, POLL_MS = 0, EMBEDDED = {embedded};"
        written = time.strftime("%Y-%m-%d %H:%M:%S")
    page = asset("dashboard.html").replace("__TITLE__", html.escape(title)).replace("__WRITTEN__", written)
    page = page.replace("__CSS__", asset("dashboard.css")).replace("__APP_JS__", asset("dashboard.js"))
    # plotly.js and the data go in last, by position, so nothing inside them is ever substituted
    before, _, rest = page.partition("__HEAD_JS__")
    middle, _, after = rest.partition("__BOOT__")
    return before + head_js + middle + boot + after
