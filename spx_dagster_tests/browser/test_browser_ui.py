"""The web UI of ``spx-data serve`` in headless Chromium: partitions and check results show.

The instance is made for real: the session assets run through Dagster against the simulator,
publishing two sessions, and a third session fails (471 from the simulator) first. Then
``spx-data serve`` starts on a free port, Selenium drives the system Chromium to the asset page
of ``spx/options_parquet``, and the test reads what a person would see; Ctrl-C (SIGINT) stops it.
Screenshots are saved under the test's temporary directory (their paths are printed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from spx_dagster.defs.assets import options_parquet, raw_option_chains, validated_options
from spx_dagster.defs.constants import ERROR_CATEGORY_TAG
from spx_dagster.defs.instance_config import render_instance_yaml
from spx_dagster.defs.resources import SpxSettingsResource, ThetaDataResource
from spx_dagster.simulator import FaultRule, SimulatorServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

BIN = Path(sys.executable).parent
PUBLISHED = ["2024-11-04", "2024-11-05"]
FAILED = "2024-11-06"
START = "2024-11-04"
SERVE_TIMEOUT_S = 180
PAGE_TIMEOUT_S = 60


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def spx_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "spx"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(render_instance_yaml())
    monkeypatch.setenv("SPX_DATA_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("SPX_DATA_PROCESSING__START_DATE", START)
    monkeypatch.setenv("SPX_DATA_STORAGE__MIN_FREE_GB", "0")
    monkeypatch.setenv("SPX_DATA_THETADATA__BACKOFF_MAX_S", "0.05")
    monkeypatch.setenv("SPX_DATA_QUALITY__LISTING_RULES", "false")  # the tiny chain's listing
    return home


def make_history(dagster_home: Path, monkeypatch) -> None:
    """One failed session, then two published ones (so the latest check results passed)."""
    assets = [raw_option_chains, validated_options, options_parquet]
    resources = {"spx_settings": SpxSettingsResource(), "thetadata": ThetaDataResource()}
    with (
        SimulatorServer(port=0, profile="fast", chain="tiny", seed=0) as sim,
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
    ):
        monkeypatch.setenv("SPX_DATA_THETADATA__BASE_URL", sim.base_url)
        sim.add_fault(FaultRule(kind="status", status=471, date=dt.date.fromisoformat(FAILED)))
        for key in [FAILED, *PUBLISHED]:
            result = dg.materialize(
                assets,
                partition_key=key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
            assert result.success == (key != FAILED)
            if key == FAILED:
                tags = instance.get_run_by_id(result.run_id).tags
                assert tags[ERROR_CATEGORY_TAG] == "permission"


@contextlib.contextmanager
def serving(port: int, log: Path):
    """``spx-data serve`` until the block ends, then Ctrl-C; yields the URL it printed."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "spx-data"), "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            deadline = time.monotonic() + SERVE_TIMEOUT_S
            url = None
            while url is None and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()[-3000:]
                for line in log.read_text().splitlines():
                    if line.startswith("Dagster UI: "):
                        url = line.split()[2]
                time.sleep(0.5)
            assert url is not None, f"no UI after {SERVE_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            yield url, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def chrome(browser: str, driver: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--window-size=1600,1100",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def skip_dialogs(driver) -> None:
    """Dismiss Dagster's first-visit community dialog, wherever it has got to."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        with contextlib.suppress(Exception):
            button.click()


def click(driver, xpath: str) -> None:
    """Click the element at ``xpath``; the community dialog can open over the page at any
    moment after it loads, so a click it intercepts dismisses it and tries again."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def clicked(d):
        try:
            d.find_element(By.XPATH, xpath).click()
            return True
        except ElementClickInterceptedException:
            skip_dialogs(d)
            return False

    WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=0.5).until(clicked)


def page_text_with(driver, needles: list[str]) -> str:
    """The page's text once every needle shows (the UI loads its data after the page)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        skip_dialogs(d)
        text = d.find_element(By.TAG_NAME, "body").text
        return text if all(n in text for n in needles) else False

    try:
        return WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=0.5).until(ready)
    except TimeoutException:
        text = driver.find_element(By.TAG_NAME, "body").text
        missing = [n for n in needles if n not in text]
        pytest.fail(f"{missing} never showed on {driver.current_url}; the page said:\n{text}")


def test_the_asset_page_shows_partitions_and_check_results(spx_home, monkeypatch, tmp_path):

    paths = chromium_paths()
    if paths is None:
        pytest.skip(
            "chromium and chromedriver are not installed; "
            "install them with `apt-get install -y chromium chromium-driver` (CI does)"
        )
    make_history(spx_home / "dagster", monkeypatch)
    port = free_port()
    shots = []
    with serving(port, tmp_path / "serve.log") as (url, process):
        assert url == f"http://127.0.0.1:{port}"
        driver = chrome(*paths)
        try:
            driver.get(f"{url}/assets/spx/options_parquet?view=partitions")
            text = page_text_with(driver, ["Materialized (2)", "Failed (1)", "Missing ("])
            assert "options_parquet" in text
            # Hide the missing ones: the list then holds exactly the sessions with a status.
            click(driver, "//*[starts-with(normalize-space(), 'Missing (')]")
            text = page_text_with(driver, [*PUBLISHED, FAILED])
            shots.append(tmp_path / "options_parquet_partitions.png")
            driver.save_screenshot(str(shots[-1]))

            driver.get(f"{url}/assets/spx/options_parquet?view=checks")
            text = page_text_with(driver, ["checksums_match", "Passed", "score"])
            assert f"Partition\n{PUBLISHED[-1]}" in text
            assert "problems 0" in text
            shots.append(tmp_path / "options_parquet_checks.png")
            driver.save_screenshot(str(shots[-1]))
        finally:
            driver.quit()
    # Ctrl-C stopped the webserver and the daemon: exit 130, nothing listens any more.
    assert process.returncode == 130
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    for shot in shots:
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
