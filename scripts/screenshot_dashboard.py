"""Serve the dashboard of RUN_DIR (possibly while a search writes it) and save a screenshot taken in
Debian's headless Chromium. Usage: python scripts/screenshot_dashboard.py RUN_DIR OUT.png"""

from __future__ import annotations

import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from evofusion.viz.dashboard import serve_dashboard


def main(run_dir: str, out: str) -> None:
    server = serve_dashboard(run_dir, port=0, poll_seconds=1.0)
    server.start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1700", f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        first = None
        for _ in range(60):
            status = driver.find_element("id", "status").text
            if "candidates" in status:
                first = first or status
                break
            time.sleep(1)
        time.sleep(8)  # let a live run add candidates; the page polls every second
        print("first status:", first)
        print("status at screenshot:", driver.find_element("id", "status").text)
        driver.save_screenshot(out)
    finally:
        driver.quit()
        server.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
