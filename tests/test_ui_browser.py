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
from contextlib import contextmanager
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


@contextmanager
def _engine_and_dashboard(tmp_path: Path, serve_args: list[str],
                          dashboard_args: list[str]) -> Iterator[dict]:
    """``castream serve`` (store tmp_path/castream.sqlite, recording to tmp_path/raw) and a
    headless ``castream dashboard`` on it, both on free ports, once the store exists and the
    page answers; stopped afterwards. ``dashboard_args`` may name ``{ingest}`` and
    ``{publish}``."""
    ingest, publish, web = (f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}",
                            _free_port())
    store, raw = tmp_path / "castream.sqlite", tmp_path / "raw"
    processes = []
    try:
        processes.append(_castream(
            "serve", "--endpoint", ingest, "--publish", publish, "--store", str(store),
            "--record-dir", str(raw), *serve_args, log_path=tmp_path / "serve.log"))
        processes.append(_castream(
            "dashboard", "--store", str(store), "--events", publish,
            *(arg.format(ingest=ingest, publish=publish) for arg in dashboard_args),
            "--port", str(web), "--headless", log_path=tmp_path / "dashboard.log"))
        url = f"http://127.0.0.1:{web}"
        _wait_until(lambda: store.exists() and _http_ok(f"{url}/_stcore/health"), 60,
                    "the engine store and the dashboard", processes)
        yield {"url": url, "tmp_path": tmp_path, "processes": processes, "ingest": ingest,
               "store": store, "raw": raw}
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.fixture
def live_system(tmp_path: Path) -> Iterator[dict]:
    """A running engine and a dashboard on it (the test starts the stream from the page)."""
    with _engine_and_dashboard(tmp_path, [], [
            "--ingest", "{ingest}", "--allow-launch", str(tmp_path), "--refresh-s", "0.5"
    ]) as system:
        yield system


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


@pytest.fixture
def cells_system(tmp_path: Path) -> Iterator[dict]:
    """``serve`` (recording to tmp_path/raw) and a dashboard that reads its store and record
    directory, with a structure image and then a Ca²⁺ movie of the same field sent to serve
    through the Publisher SDK (the field of ``tests/cells_scene.py``)."""
    with _engine_and_dashboard(tmp_path, ["--detector", "classical"],
                               ["--record-dir", str(tmp_path / "raw")]) as system:
        _send_field(system["ingest"])
        _wait_until(lambda: _count_rows(system["store"], "cell_phenotypes") > 0, 60,
                    "the per-cell phenotypes of the movie", system["processes"])
        yield system


def _send_field(ingest: str) -> None:
    from acquisition.publisher import Publisher
    from tests.cells_scene import MOVIE_BLANK, MOVIE_DT_MS, MOVIE_PIXEL_UM, field_scene

    scene = field_scene(seed=3)
    with Publisher(ingest, stream="field-3-actinin") as pub:
        pub.start("image", "uint16", scene.field.image.shape, pixel_um=scene.field.pixel_um,
                  field="field-3")
        pub.send(scene.field.image)
    with Publisher(ingest, stream="field-3-calcium") as pub:
        pub.start("frames", "uint16", scene.movie.shape[1:], pixel_um=MOVIE_PIXEL_UM,
                  dt_ms=MOVIE_DT_MS, blank=MOVIE_BLANK, field="field-3")
        for first in range(0, len(scene.movie), 10):
            pub.send(scene.movie[first:first + 10])


def _count_rows(store: Path, table: str) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        db.close()


def test_cells_view_shows_field_card_and_attributed_events(cells_system):
    """The Cells view of a field analysed by serve: outlines over the recorded structure
    image, the card of each accepted cell with its spark phenotype, no exception."""
    expect = playwright_sync.expect
    directory = Path(os.environ.get("CASTREAM_SCREENSHOT_DIR") or cells_system["tmp_path"])
    directory.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        try:
            page.goto(cells_system["url"])
            page.get_by_test_id("stSidebar").get_by_text("Cells", exact=True).click()
            expect(page.get_by_text("Field field-3")).to_be_visible(timeout=30_000)
            expect(_metric_value(page, "Cells")).to_have_text("2")
            expect(_metric_value(page, "Ca²⁺ events in cells")).to_have_text("4")
            expect(page.get_by_text("structure image field-3-actinin.tif")).to_be_visible()
            for number, cell in enumerate(_accepted_options(page), start=1):
                _choose(page, _cell_picker(page), cell)
                cell_id = cell.split(" ")[0]
                expect(page.get_by_text(f"Cell card — ROI {cell_id}")).to_be_visible()
                expect(page.get_by_text(f"Cell {cell_id} — Ca²⁺")).to_be_visible()
                expect(_metric_value(page, "Sparks · puffs · waves")).to_have_text("2 · 0 · 0")
                _fit_viewport_to_page(page)
                page.screenshot(path=str(directory / f"cells_view_{number}.png"), full_page=True)
            expect(page.get_by_test_id("stException")).to_have_count(0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnosis(cells_system)}") from exc
        finally:
            browser.close()


def _cell_picker(page):
    return page.get_by_test_id("stSelectbox").filter(has_text="Cell").get_by_role("combobox")


def _accepted_options(page) -> list[str]:
    """The picker's accepted cells (``"3 · cell · score 3.32"``), read from its list."""
    _cell_picker(page).click()
    options = page.get_by_role("option").filter(has_text="· cell ·")
    expect = playwright_sync.expect
    expect(options.first).to_be_visible()
    names = [text.strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    assert len(names) == 2, names
    return names


def _fit_viewport_to_page(page) -> None:
    """Make the window as tall as the page (Streamlit scrolls inside its main section, so
    a full-page screenshot shows only the window)."""
    _wait_rendered(page)
    height = page.evaluate("""() => {
        const content = document.querySelector('[data-testid="stMainBlockContainer"]');
        return content ? content.scrollHeight : document.body.scrollHeight; }""")
    page.set_viewport_size({"width": 1500, "height": max(900, int(height) + 20)})
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    _wait_rendered(page)


def _wait_rendered(page) -> None:
    """No element left from before the last rerun (Streamlit marks them stale) and every
    image loaded."""
    page.wait_for_function(
        """() => document.querySelectorAll('[data-stale="true"]').length === 0
            && [...document.querySelectorAll('[data-testid="stImage"] img')]
                .every(img => img.complete && img.naturalWidth > 0)""", timeout=30_000)
