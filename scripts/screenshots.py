"""Screenshots of report pages for docs/: ``python scripts/screenshots.py OUT.png RUN_DIR [RUN_DIR ...]``.

Writes the report of RUN_DIR (with the other runs compared when several are given) to a temporary
folder, opens it in Debian's headless Chromium (selenium, no driver download) and saves the whole
page as OUT.png. ``--select ID`` selects a candidate first (its lineage, architecture, curve).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from evofusion.store import RunStore
from evofusion.viz import write_html_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--select", type=int, default=None)
    ap.add_argument("--width", type=int, default=1400)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with RunStore(a.runs[0], lock=False, readonly=True) as store:
            page = write_html_report(store, Path(tmp) / "report.html", compare=a.runs[1:])
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={a.width},1600", f"--user-data-dir={tmp}/profile", "--hide-scrollbars"):
            opts.add_argument(arg)
        d = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
        try:
            d.get(page.resolve().as_uri())
            time.sleep(2)
            if a.select is not None:
                d.execute_script("select(arguments[0])", a.select)
                time.sleep(1)
            h = d.execute_script("return document.body.scrollHeight")
            d.set_window_size(a.width, min(h + 30, 6000))
            time.sleep(1.5)
            d.save_screenshot(str(a.out))
        finally:
            d.quit()
    print(f"{a.out}: {a.width} x {min(h + 30, 6000)}")


if __name__ == "__main__":
    main()
