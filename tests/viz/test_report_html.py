"""report.html: the dashboard's page with its data embedded; plotly.js beside it once (or inlined)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from evofusion.store import RunStore
from evofusion.viz import report_data, write_html_report
from evofusion.viz.report import embed_architectures
from tests.viz.conftest import add_growth_events


def _embedded(page: str) -> dict:
    m = re.search(r"const LIVE = false, POLL_MS = 0, EMBEDDED = (\{.*?\});\nconst WRITTEN", page, re.S)
    assert m, "no embedded data"

    def strict(name: str) -> None:
        raise AssertionError(f"non-JSON constant {name} in the embedded data")

    return json.loads(m.group(1).replace("<\\/", "</"), parse_constant=strict)


def test_report_is_small_with_plotly_beside_it(run_copy: Path) -> None:
    from plotly.offline import get_plotlyjs

    with RunStore(run_copy, lock=False, readonly=True) as store:
        path = write_html_report(store)
        want = embed_architectures(report_data(store))
    assert path == run_copy / "report.html"
    page = path.read_text()
    assert '<script src="plotly.min.js"></script>' in page and get_plotlyjs() not in page
    assert (run_copy / "plotly.min.js").read_text() == get_plotlyjs()  # relative: opens offline, travels
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for el in ("pareto", "hv", "progress", "parcoords", "lineage", "curve", "arch", "growth", "candidates",
               "status", "compare-panel"):
        assert f'id="{el}"' in page
    data = _embedded(page)
    assert data == json.loads(json.dumps(want))
    assert len(data["candidates"]) == 8 and data["best"] is not None and data["growth"] == []
    assert set(data["arch"]) == {str(c["id"]) for c in data["candidates"] if c["status"] == "COMPLETE"}


def test_inline_report_is_one_self_contained_file(run_copy: Path) -> None:
    from plotly.offline import get_plotlyjs

    with RunStore(run_copy, lock=False, readonly=True) as store:
        page = write_html_report(store, run_copy / "one.html", inline=True).read_text()
    assert "<script src=" not in page and get_plotlyjs() in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.replace(get_plotlyjs(), ""))


def _grow_to(run: Path, n: int) -> None:
    """Copies of the run's candidates with other widths until it holds ``n`` (each a distinct genome
    with its training curve), as a long search would leave them."""
    import random

    conn = sqlite3.connect(run / "run.db")
    rows = conn.execute("SELECT * FROM candidates WHERE status='COMPLETE'").fetchall()
    cols = [r[1] for r in conn.execute("PRAGMA table_info(candidates)")]
    rng, next_id = random.Random(0), conn.execute("SELECT MAX(id) FROM candidates").fetchone()[0] + 1
    with conn:
        while next_id < n:
            row = dict(zip(cols, rows[next_id % len(rows)], strict=True))
            g = json.loads(row["genome"])
            for st in g["stages"]:
                st["width"] = rng.randint(2, 64)
            row.update(id=next_id, genome=json.dumps(g), genome_hash=f"h{next_id}", generation=next_id // 8)
            conn.execute(f"INSERT INTO candidates ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                         [row[c] for c in cols])
            next_id += 1
    conn.close()


def test_report_of_100_candidates_is_under_1_mb(run_copy: Path) -> None:
    _grow_to(run_copy, 100)
    with RunStore(run_copy, lock=False, readonly=True) as store:
        path = write_html_report(store)
    data = _embedded(path.read_text())
    assert len(data["candidates"]) == 100 and len(data["arch"]) == 100
    assert all(c["train"]["curve"]["loss"] for c in data["candidates"])
    assert len(data["hv"]["history"]) == 100
    assert path.stat().st_size < 1_000_000, path.stat().st_size


def test_a_comparison_page_draws_every_run(run_copy: Path, finished_run: Path, tmp_path: Path) -> None:
    with RunStore(run_copy, lock=False, readonly=True) as store:
        page = write_html_report(store, tmp_path / "cmp.html", compare=[finished_run]).read_text()
    runs = _embedded(page)["compare"]
    assert [r["run_dir"] for r in runs] == [str(run_copy), str(finished_run)]
    assert runs[0]["ref"] == runs[1]["ref"]  # one reference point, so the curves compare
    assert runs[0]["hv"][-1]["hv"] == pytest.approx(runs[1]["hv"][-1]["hv"])  # the same run twice
    assert (tmp_path / "plotly.min.js").exists()


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
def test_report_renders_offline_in_headless_chromium(chrome, run_copy: Path, finished_run: Path) -> None:
    with RunStore(run_copy, lock=False, readonly=True) as store:
        path = write_html_report(store, compare=[finished_run])
        data = embed_architectures(report_data(store))
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

    # hypervolume: by evaluations (8 steps) and by wall time, under a title naming the reference
    assert chrome.find_element("id", "hv-title").text.startswith("Hypervolume of (validation error, log10 params)")
    assert len(chrome.find_elements("css selector", "#hv .scatterlayer .trace")) == 2
    assert [e.text for e in chrome.find_elements("css selector", "#hv .xtitle, #hv .x2title")] == \
        ["evaluations", "wall time (min)"]
    # parallel coordinates: one line per COMPLETE candidate, the selected one marked
    lines = chrome.find_elements("css selector", "#parcoords polyline.pc-line")
    assert len(lines) == 8
    labels = {e.text for e in chrome.find_elements("css selector", "#parcoords text.pc-label")}
    assert {"accuracy", "params"} <= labels and any(lbl.startswith("width") for lbl in labels)
    assert [int(e.get_attribute("data-id")) for e in lines if "sel" in e.get_attribute("class")] == [data["best"]]
    # architecture of the selected candidate: the input and one box per layer, totals in the title
    arch = data["arch"][str(data["best"])]
    assert len(chrome.find_elements("css selector", "#arch g.arch-layer")) == len(arch["layers"]) + 1
    assert f"{arch['params']} params" in chrome.find_element("id", "arch-title").text
    # training curve: loss and validation accuracy
    assert chrome.find_element("id", "curve-title").text == f"Training curve of candidate #{data['best']}"
    assert len(chrome.find_elements("css selector", "#curve .scatterlayer .trace")) == 2
    # clicking another candidate's line selects it everywhere
    other = next(c["id"] for c in data["candidates"] if c["id"] != data["best"])
    chrome.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))",
        chrome.find_element("css selector", f'#parcoords polyline[data-id="{other}"]'))
    assert chrome.find_element("id", "lineage-title").text.startswith(f"Lineage of candidate #{other} ")
    assert chrome.find_element("id", "arch-title").text.startswith(f"Architecture of candidate #{other}:")
    # the comparison: both runs' fronts and hypervolume curves, one table row each
    assert chrome.find_element("id", "compare-panel").is_displayed()
    assert len(chrome.find_elements("css selector", "#compare-pareto .scatterlayer .trace")) == 2
    assert len(chrome.find_elements("css selector", "#compare-hv .scatterlayer .trace")) == 2
    assert len(chrome.find_elements("css selector", "#compare-table tr")) == 3
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
