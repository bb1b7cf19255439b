"""End to end in a real browser: ``castream serve`` + a simulated stream + ``castream dashboard``,
checked with headless Chromium through Playwright (marked ``browser``).

Skipped when /usr/bin/chromium or the playwright package is missing. Every wait is on a
condition with a timeout (no fixed sleeps); ports are free ones picked at run time. The
screenshot goes to ``$CASTREAM_SCREENSHOT_DIR`` (or the test's tmp_path).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CASTREAM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _castream(*args: str, log_path: Path) -> subprocess.Popen:
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], stdout=log_file,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    process.log_file = log_file  # type: ignore[attr-defined]
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.log_file.close()  # type: ignore[attr-defined]


def _wait_until(predicate, timeout_s: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{what}: {process.args[3]} exited with {process.returncode}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def live_system(tmp_path: Path) -> Iterator[dict]:
    """A running engine and a dashboard on it (the test starts the stream from the page)."""
    ingest, publish, web = (f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}",
                            _free_port())
    store = tmp_path / "castream.sqlite"
    processes = []
    try:
        processes.append(_castream(
            "serve", "--endpoint", ingest, "--publish", publish, "--store", str(store),
            "--record-dir", str(tmp_path / "raw"), log_path=tmp_path / "serve.log"))
        processes.append(_castream(
            "dashboard", "--store", str(store), "--events", publish, "--ingest", ingest,
            "--allow-launch", str(tmp_path), "--port", str(web), "--headless",
            "--refresh-s", "0.5",
            log_path=tmp_path / "dashboard.log"))
        url = f"http://127.0.0.1:{web}"
        _wait_until(lambda: store.exists() and _http_ok(f"{url}/_stcore/health"), 60,
                    "the engine store and the dashboard", processes)
        yield {"url": url, "tmp_path": tmp_path, "processes": processes}
    finally:
        for process in reversed(processes):
            _stop(process)


def _screenshot_path(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("CASTREAM_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "castream_dashboard.png"


def _diagnosis(live_system: dict) -> str:
    """Which castream process died, with the end of its log (for a failing assertion)."""
    lines = []
    for process in live_system["processes"]:
        if process.poll() is not None:
            log_text = Path(process.log_file.name).read_text(errors="replace")
            tail = "\n".join(log_text.splitlines()[-8:])
            lines.append(f"`castream {process.args[3]}` exited with {process.returncode}:\n{tail}")
    return "\n".join(lines) or "all castream processes still running"


def _metric_value(page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).first.get_by_test_id(
        "stMetricValue")


def test_dashboard_shows_live_events_and_updates(live_system):
    shot = _screenshot_path(live_system["tmp_path"])
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2000})
        try:
            _check_live_page(page, live_system["url"])
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnosis(live_system)}") from exc
        finally:
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    assert shot.stat().st_size > 10_000


def _choose(page, combobox, option: str, attempts: int = 5) -> None:
    """Pick ``option`` in a Streamlit select box (retrying if a rerun closed the list)."""
    for _ in range(attempts):
        combobox.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=3_000)
        except playwright_sync.TimeoutError:
            continue
        playwright_sync.expect(combobox).to_have_value(option)
        return
    raise AssertionError(f"could not choose {option!r}")


def _start_stream_from_page(page) -> None:
    """Waiting screen, then the sidebar form starts a simulated CPVT line-scan (seed 3)."""
    expect = playwright_sync.expect
    expect(page.get_by_text("Waiting for the first stream")).to_be_visible(timeout=30_000)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Start a stream").click()
    phenotype = sidebar.get_by_test_id("stSelectbox").filter(has_text="Phenotype")
    _choose(page, phenotype.get_by_role("combobox"), "cpvt")
    sidebar.get_by_label("Seed").fill("3")  # no Enter: it would submit the form
    sidebar.get_by_role("button", name="Start").click()
    expect(sidebar.get_by_text("Started simulated linescan (cpvt, seed 3")).to_be_visible(
        timeout=10_000)


def _check_live_page(page, url: str) -> None:
    """Start a stream from the page; it appears, its event count grows, the live image and
    the table are shown."""
    expect = playwright_sync.expect
    page.goto(url)
    _start_stream_from_page(page)
    expect(page.get_by_text("Pipeline health")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("● live").first).to_be_visible(timeout=10_000)
    events = _metric_value(page, "Events")
    expect(events).not_to_have_text("0", timeout=30_000)
    first_count = int(events.inner_text().replace(",", ""))
    page.wait_for_function(
        """([n]) => {
            const m = [...document.querySelectorAll('[data-testid="stMetric"]')]
                .find(e => e.innerText.startsWith('Events'));
            const v = m && m.querySelector('[data-testid="stMetricValue"]');
            return v && parseInt(v.innerText.replace(/,/g, '')) > n;
        }""", arg=[first_count], timeout=30_000)
    expect(page.get_by_text("Waiting for the engine's live image")).to_have_count(0)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
