"""End to end in a real browser: the detect pipeline stage scores real transactions, `synthwatch dashboard` serves them,
headless Chromium (driven by chromedriver) finds the top alert in the queue and labels it fraud, and the label is in
the warehouse. `make test` installs Debian's chromium and chromium-driver when they are missing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"synthwatch dashboard exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the dashboard at {url} did not answer within {timeout} s")


@pytest.fixture
def scored(settings, warehouse, creditcard_small) -> dict:
    """A warehouse made by the pipeline: real transactions scored by the detect stage (an iforest, fast)."""
    from flows.detect import pipeline_stage

    with warehouse.transaction() as con:
        warehouse.write_frame(con, "cc", creditcard_small)
    return pipeline_stage(settings, {"table": "cc", "detector": "iforest", "label_column": "Class",
                                     "normal_value": 0, "max_train_rows": 500, "seed": 0})


@pytest.fixture
def dashboard(settings, scored):
    """Start `synthwatch dashboard` on a free port of 127.0.0.1; its URL. Stopped (with its server) afterwards."""
    port = free_port()
    env = {**os.environ, "SYNTHWATCH_DB": str(settings.db_path), "SYNTHWATCH_DATA_DIR": str(settings.data_dir),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "dashboard", "--port", str(port)], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        assert process.stdout.readline().startswith(f"dashboard at {url} ")
        wait_healthy(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, process.stdout.read()
    assert not (settings.data_dir / "dashboard").exists() or (settings.data_dir / "dashboard").is_dir()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromedriver must be on PATH: `make test` installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.set_page_load_timeout(60)
    try:
        yield session
    finally:
        session.quit()


def test_label_the_top_alert_in_a_real_browser(warehouse, scored, dashboard, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    stage = scored
    assert stage["alerts"] > 0
    with warehouse.read() as con:
        top_key, top_score = con.execute(
            "SELECT item_key, score FROM main.alerts ORDER BY score DESC, item_key LIMIT 1").fetchone()

    browser.get(dashboard + "?page=alerts")
    wait = WebDriverWait(browser, 60)
    heading = wait.until(ready.presence_of_element_located(
        (By.XPATH, "//h4[starts-with(normalize-space(.), 'Selected alert: item')]")))
    shown_key = re.fullmatch(r"Selected alert: item (\S+)", heading.text.strip()).group(1)
    assert shown_key == top_key  # the queue puts the highest-scored open alert first
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Alert queue" in body and stage["model_id"] in body

    fraud = wait.until(ready.element_to_be_clickable((By.XPATH, "//button[normalize-space(.)='reportFraud' or "
                                                                "normalize-space(.)='Fraud' or .//p[text()='Fraud']]")))
    fraud.click()
    wait.until(ready.presence_of_element_located(
        (By.XPATH, f"//*[contains(normalize-space(.), 'Labelled item {top_key} of cc as fraud.')]")))
    deadline = time.monotonic() + 20
    while True:
        with warehouse.read() as con:
            stored = con.execute("SELECT table_name, item_key, model_id, label, source FROM main._feedback").fetchall()
        if stored or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored == [("cc", top_key, stage["model_id"], "fraud", "dashboard")]
    # The labelled alert has left the open queue: the next one is selected now.
    wait.until(lambda b: not b.find_elements(
        By.XPATH, f"//h4[normalize-space(.)='Selected alert: item {top_key}']"))
    assert top_score > 0
