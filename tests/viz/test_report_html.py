"""report.html: one self-contained file with the dashboard's plots, data embedded, plotly.js inlined."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from evofusion.store import RunStore
from evofusion.viz import report_data, write_html_report
from tests.viz.conftest import add_growth_events


def _embedded(page: str) -> dict:
    m = re.search(r"const LIVE = false, POLL_MS = 0, EMBEDDED = (\{.*?\});\nconst WRITTEN", page, re.S)
    assert m, "no embedded data"

    def strict(name: str) -> None:
        raise AssertionError(f"non-JSON constant {name} in the embedded data")

    return json.loads(m.group(1).replace("<\\/", "</"), parse_constant=strict)


def test_report_is_one_self_contained_file(run_copy: Path) -> None:
    from plotly.offline import get_plotlyjs

    with RunStore(run_copy, lock=False, readonly=True) as store:
        path = write_html_report(store)
        want = report_data(store)
    assert path == run_copy / "report.html"
    page = path.read_text()
    assert "Pareto front" in page and "<script src=" not in page
    assert get_plotlyjs() in page  # inlined, so the file opens offline
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.replace(get_plotlyjs(), ""))
    for el in ("pareto", "progress", "lineage", "growth", "candidates", "status"):
        assert f'id="{el}"' in page
    data = _embedded(page)
    assert data == json.loads(json.dumps(want))
    assert len(data["candidates"]) == 8 and data["best"] is not None and data["growth"] == []


def test_report_embeds_growth_and_strict_json(run_copy: Path) -> None:
    add_growth_events(run_copy, [(10, "widen", 500, 800, 0.5, 0.55)])
    conn = sqlite3.connect(run_copy / "run.db")
    with conn:  # a value no JSON parser accepts (NaN) must reach the page as null
        conn.execute("""UPDATE candidates SET objective_values='{"accuracy": NaN, "params": 10}' WHERE id=0""")
    conn.close()
    with RunStore(run_copy, lock=False, readonly=True) as store:
        page = write_html_report(store, run_copy / "r.html").read_text()
    data = _embedded(page)
    assert data["growth"] == [{"step": 10, "operator": "widen", "params_before": 500, "params_after": 800,
                               "acc_before": 0.5, "acc_after": 0.55}]
    assert data["candidates"][0]["objectives"] == {"accuracy": None, "params": 10}


def test_script_end_tag_in_data_cannot_close_the_script(run_copy: Path) -> None:
    conn = sqlite3.connect(run_copy / "run.db")
    with conn:
        conn.execute("UPDATE candidates SET reason='</script><b>x' WHERE id=1")
    conn.close()
    with RunStore(run_copy, lock=False, readonly=True) as store:
        page = write_html_report(store, run_copy / "r.html").read_text()
    assert "</script><b>x" not in page
    assert _embedded(page)["candidates"][1]["reason"] == "</script><b>x"


@pytest.mark.browser
def test_report_renders_offline_in_headless_chromium(chrome, run_copy: Path) -> None:
    with RunStore(run_copy, lock=False, readonly=True) as store:
        path = write_html_report(store)
        data = report_data(store)
    chrome.get(path.resolve().as_uri())
    end = time.time() + 30
    while time.time() < end and not chrome.find_elements("css selector", "#pareto .scatterlayer .point"):
        time.sleep(0.2)
    status = chrome.find_element("id", "status").text
    assert re.match(r"8 candidates \(complete 8\) · Pareto front \d+ · report written ", status)
    n_front = len(chrome.find_elements("css selector", "#pareto .scatterlayer .trace:nth-child(2) .point"))
    assert n_front == len(data["pareto"])
    assert chrome.find_element("id", "lineage-title").text.startswith(f"Lineage of candidate #{data['best']} ")
    assert chrome.find_elements("css selector", "#progress .scatterlayer .point")
    assert not chrome.find_element("id", "growth-panel").is_displayed()
    assert len(chrome.find_elements("css selector", "#candidates tbody tr")) == 8
    chrome.find_element("css selector", '#candidates th[data-key="id"]').click()  # id was ascending
    ids = [int(tr.get_attribute("data-id")) for tr in chrome.find_elements("css selector", "#candidates tbody tr")]
    assert ids == sorted(ids, reverse=True)
    assert not [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]


def test_the_pareto_axis_follows_the_run_objectives(chrome, tmp_path: Path) -> None:
    from evofusion import Study
    from tests.conftest import tiny_config

    run = tmp_path / "flops"
    s = Study.create(tiny_config(generations=1, final={"top_k": 0}, objectives={"names": ["accuracy", "flops"]}),
                     run, log=lambda *_: None)
    try:
        s.optimize()
    finally:
        s.close()
    with RunStore(run, lock=False, readonly=True) as store:
        path = write_html_report(store)
    chrome.get(path.resolve().as_uri())
    end = time.time() + 30
    while time.time() < end and not chrome.find_elements("css selector", "#pareto .scatterlayer .point"):
        time.sleep(0.2)
    titles = [e.text for e in chrome.find_elements("css selector", "#pareto .xtitle")]
    assert titles == ["flops (log)"]
    ticks = [e.text for e in chrome.find_elements("css selector", "#pareto .xtick text")]
    assert ticks and all(any(ch.isdigit() for ch in t) for t in ticks)
    assert not [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
