"""The dashboard page logic with streamlit.testing.v1.AppTest on seeded stores (no browser)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.events import Event  # noqa: E402
from engine.sinks.store import SqliteStore  # noqa: E402
from ui.config import (  # noqa: E402
    ENV_EVENTS,
    ENV_INGEST,
    ENV_LAUNCH_DIR,
    ENV_STALE_S,
    ENV_STORE,
)

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
STREAM = "sim-linescan-cpvt-7"


def _event(event_id: int, kind: str = "spark", t_ms: float = 100.0) -> Event:
    return Event(
        event_id=event_id, kind=kind, t_start_ms=t_ms - 10, t_peak_ms=t_ms, t_end_ms=t_ms + 40,
        x_um=10.0 + event_id, y_um=math.nan, amplitude_dff0=0.5 + 0.1 * event_id,
        fwhm_um=2.0, fdhm_ms=25.0, rise_ms=8.0, t50_ms=20.0, stream=STREAM, cell="cell-7",
        score=0.9,
    )


def _stats(**overrides) -> dict:
    stats = {
        "t_s": time.time(), "frames_in": 2000, "frames_analyzed": 1900, "lag_frames": 100,
        "compute_p50_ms": 4.2, "compute_p99_ms": 11.5, "gaps": 0, "errors": 0,
        "queue_depth": 3, "input_rate_hz": 666.0, "analysis_rate_hz": 650.0,
        "frames_recorded": 2000, "spark_freq_per_100um_s": 1.37,
    }
    return {**stats, **overrides}


def _open_stream(store: SqliteStore, stream: str = STREAM) -> None:
    store.open_stream({
        "stream": stream, "cell": "cell-7", "mode": "linescan", "shape": [512],
        "pixel_um": 0.2, "dt_ms": 1.5, "model": "classical", "backend": "numpy",
        "backend_reason": "no model directory given", "lookahead_ms": 60.0,
    })


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "castream.db"


@pytest.fixture
def seeded_store(store_path: Path) -> Path:
    """One live line-scan stream with 4 sparks and a puff, fresh stats and a cell summary."""
    with SqliteStore(store_path) as store:
        _open_stream(store)
        kinds = ["spark", "spark", "puff", "spark", "spark"]
        store.write_events(STREAM, [_event(i + 1, k, 100.0 + 200 * i) for i, k in enumerate(kinds)])
        store.write_stats(STREAM, _stats())
        store.write_cell(STREAM, {"cell": "cell-7", "label": "cpvt", "confidence": 0.81,
                                  "n_sparks": 4, "votes": {"wt": 1, "cpvt": 3},
                                  "n_skipped": 0, "mean_proba": 0.7})
    return store_path


def _run(monkeypatch, store_path: Path, **env: str) -> AppTest:
    monkeypatch.setenv(ENV_STORE, str(store_path))
    monkeypatch.delenv(ENV_EVENTS, raising=False)
    monkeypatch.setenv(ENV_INGEST, env.get("ingest", ""))
    monkeypatch.setenv(ENV_STALE_S, env.get("stale_s", "10"))
    monkeypatch.setenv(ENV_LAUNCH_DIR, env.get("launch_dir", ""))
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_missing_store_file_waits_with_instructions(monkeypatch, store_path):
    app = _run(monkeypatch, store_path)
    assert "Waiting for the engine" in _texts(app.info)
    assert "does not exist" in _texts(app.info)
    assert f"--store {store_path}" in _texts(app.code)
    assert not app.error


def test_empty_store_waits_for_first_stream(monkeypatch, store_path):
    SqliteStore(store_path).close()
    app = _run(monkeypatch, store_path)
    assert "Waiting for the first stream" in _texts(app.info)
    assert "castream simulate" in _texts(app.code)
    assert not app.error and not app.metric


def test_stream_with_events_stats_and_cell(monkeypatch, seeded_store):
    app = _run(monkeypatch, seeded_store)
    metrics = _metrics(app)
    assert metrics["Events"] == "5"
    assert metrics["Sparks · puffs · waves"] == "4 · 1 · 0"
    assert metrics["Cell class"] == "CPVT"
    assert metrics["Input rate"] == "666 fr/s"
    assert metrics["Lag"] == "150 ms"  # 100 lines × 1.5 ms
    assert metrics["Look-ahead"] == "60 ms"
    assert metrics["Compute p50 / p99"] == "4.2 / 11.5 ms"
    assert metrics["Frames recorded"] == "2,000"
    assert metrics["Errors"] == "0"
    assert metrics["Spark frequency (/100 µm/s)"] == "1.37"  # as the engine reported it
    captions = _texts(app.caption)
    assert "confidence **81 %**" in captions and "from **4 sparks**" in captions
    assert "classical" in captions and "no model directory given" in captions
    table = app.dataframe[0].value
    assert list(table["event_id"]) == [5, 4, 3, 2, 1]  # newest first
    assert "y_um" not in table.columns  # line-scan
    assert not app.error and not app.warning


@pytest.mark.parametrize("stopped", [False, True])
def test_live_image_caption_tells_a_stopped_stream_from_a_silent_feed(
        monkeypatch, seeded_store, ipc_endpoint, stopped):
    if stopped:
        with SqliteStore(seeded_store) as store:
            store.close_stream(STREAM)
    monkeypatch.setenv(ENV_STORE, str(seeded_store))
    monkeypatch.setenv(ENV_EVENTS, ipc_endpoint)  # a subscriber that receives nothing
    monkeypatch.setenv(ENV_INGEST, "")
    monkeypatch.setenv(ENV_STALE_S, "10")
    monkeypatch.setenv(ENV_LAUNCH_DIR, "")
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    captions = _texts(app.caption)
    assert ("This stream has stopped" in captions) is stopped
    assert ("Waiting for the engine's live image" in captions) is not stopped


def test_stream_with_errors_and_gaps_is_flagged(monkeypatch, store_path):
    with SqliteStore(store_path) as store:
        _open_stream(store)
        store.write_stats(STREAM, _stats(errors=7, gaps=12,
                                         errors_by_code={"bad_dtype": 5, "bad_shape": 2}))
    app = _run(monkeypatch, store_path)
    errors = _texts(app.error)
    assert "7 input errors" in errors and "bad_dtype: 5" in errors
    assert "12 frames missing" in _texts(app.warning)
    assert _metrics(app)["Errors"] == "7"
    assert _metrics(app)["Cell class"] == "—"


def test_dead_engine_warns_with_last_update(monkeypatch, store_path):
    with SqliteStore(store_path) as store:
        _open_stream(store)
        store.write_stats(STREAM, _stats(t_s=time.time() - 120))
    store_started = time.time() - 120
    with SqliteStore(store_path) as store:  # pretend the stream started long ago
        store._write("UPDATE streams SET started_s = ?", [[store_started]])
    app = _run(monkeypatch, store_path)
    warning = _texts(app.warning)
    assert "has not updated this live stream since" in warning
    assert time.strftime("%H:%M", time.localtime(store_started)) in warning


def test_history_mode_lists_past_streams_and_exports_csv(monkeypatch, seeded_store):
    with SqliteStore(seeded_store) as store:
        _open_stream(store, "old-stream")
        store.write_events("old-stream", [_event(1), _event(2, "wave")])
        store.close_stream("old-stream")
    app = _run(monkeypatch, seeded_store)
    app.sidebar.radio(key="mode").set_value("History").run()
    assert not app.exception
    picker = app.sidebar.selectbox(key="stream_History")
    assert picker.options[0].startswith(f"● {STREAM}")  # live first
    picker.set_value("old-stream").run()
    assert _metrics(app)["Events"] == "2"
    assert len(app.dataframe[0].value) == 2
    assert app.get("download_button")


def test_movie_stream_shows_y_and_frame(monkeypatch, store_path):
    with SqliteStore(store_path) as store:
        store.open_stream({"stream": "movie-1", "mode": "frames", "shape": [64, 512],
                           "pixel_um": 0.2, "dt_ms": 6.8, "lookahead_ms": 760.0})
        event = _event(1)
        event.y_um = 4.0
        store.write_events("movie-1", [event])
        store.write_stats("movie-1", _stats())
    app = _run(monkeypatch, store_path)
    assert "movie 64 × 512 px" in _texts(app.caption)
    assert "y_um" in app.dataframe[0].value.columns
    assert _metrics(app)["Spark frequency (/100 µm/s)"] == "1.37"
    assert not app.error


def test_launcher_is_off_without_allow_launch(monkeypatch, seeded_store):
    app = _run(monkeypatch, seeded_store, ingest="tcp://127.0.0.1:5555")
    assert not app.sidebar.button and len(app.sidebar.selectbox) == 1  # the stream picker only


def test_launcher_checks_the_engine_is_alive(monkeypatch, seeded_store, tmp_path):
    folder = tmp_path / "replayable"
    folder.mkdir()
    (folder / "cell.tif").write_bytes(b"II*\x00")
    dead = f"ipc://{tmp_path}/nobody.sock"
    app = _run(monkeypatch, seeded_store, ingest=dead, launch_dir=str(folder))
    app.sidebar.selectbox[1].set_value("replay")  # [0] is the stream picker
    app.sidebar.selectbox[3].set_value("cell.tif")
    app.sidebar.button[0].click().run()
    assert "no engine is listening" in _texts(app.sidebar.error)
    assert not app.exception


def test_engine_behind_is_told_apart_from_a_silent_feed(monkeypatch, store_path):
    with SqliteStore(store_path) as store:
        _open_stream(store)
        store.write_stats(STREAM, _stats(lag_s=25.0, lag_frames=100))
    app = _run(monkeypatch, store_path)
    assert _metrics(app)["Lag"] == "25.0 s"  # wall clock, not 100 lines × 1.5 ms
    warning = _texts(app.warning)
    assert "25.0 s behind the input" in warning and "Engine gone" not in warning
    assert "silent" not in warning


def test_stream_alarms_name_the_stream(monkeypatch, store_path):
    with SqliteStore(store_path) as store:
        _open_stream(store)
        store.write_stats(STREAM, _stats(recording_failure="No space left on device",
                                         abandoned=True))
    app = _run(monkeypatch, store_path)
    assert f"Recording of stream {STREAM} failed" in _texts(app.error)
    assert "No space left on device" in _texts(app.error)
    assert f"Stream {STREAM} was abandoned" in _texts(app.warning)


def test_engine_state_rules():
    from ui.engine_state import engine_state

    now = 1000.0
    live = {"stream": "s", "live": True, "started_s": now - 50, "lookahead_ms": 300.0}
    fresh = {"t_s": now - 1, "lag_s": 0.5}
    assert engine_state(live, fresh, 10.0, now_s=now) == "ok"
    assert engine_state({**live, "live": False}, fresh, 10.0, now_s=now) == "stopped"
    assert engine_state(live, {**fresh, "t_s": now - 30}, 10.0, now_s=now) == "gone"
    assert engine_state(live, {**fresh, "lag_s": 2.2}, 10.0, now_s=now) == "ok"  # < 0.3 + 2
    assert engine_state(live, {**fresh, "lag_s": 25.0}, 10.0, "tcp://x", None,
                        now_s=now) == "behind"  # not "feed silent"
    assert engine_state(live, fresh, 10.0, "tcp://x", now - 30, now_s=now) == "feed_silent"
    assert engine_state(live, fresh, 10.0, "tcp://x", now - 1, now_s=now) == "ok"


def test_engine_listening_probe(ipc_endpoint):
    from acquisition.ingest import Ingest
    from ui.launcher import engine_listening

    assert not engine_listening(ipc_endpoint, timeout_s=0.3)
    with Ingest(ipc_endpoint) as ingest:
        assert engine_listening(ipc_endpoint)
        assert ingest.error_totals() == {}  # the probe is a proper ZeroMQ peer


# -- the pieces behind the page (no Streamlit runtime) ---------------------------------------


def test_preview_strips_assemble_into_a_kymograph_with_gaps():
    import numpy as np

    from ui.live import PreviewStrip, assemble_kymograph

    coarse = PreviewStrip(first=0, step=4, image=np.ones((10, 3), np.float32))  # frames 0..39
    fine = PreviewStrip(first=60, step=2, image=np.full((10, 3), 2.0, np.float32))  # 60..79
    image, first, step = assemble_kymograph([coarse, fine], window_frames=1000)
    assert (first, step, image.shape) == (0, 2, (40, 3))
    assert np.all(image[:20] == 1.0) and np.all(np.isnan(image[20:30])) and np.all(image[30:] == 2.0)
    image, first, _ = assemble_kymograph([coarse, fine], window_frames=20)
    assert first == 60 and np.all(image == 2.0)


def test_subscriber_decodes_the_engine_preview_topic():
    import numpy as np

    from engine.sinks.publish import EventPublisher
    from ui.live import PubSubscriber

    endpoint = f"inproc://castream-ui-test-{time.monotonic_ns()}"
    publisher = EventPublisher(endpoint)
    subscriber = PubSubscriber(endpoint)
    try:
        raw = np.array([[0, 255], [51, 102]], np.uint8)
        deadline = time.monotonic() + 10
        while not subscriber.strips("s1") and time.monotonic() < deadline:
            publisher.publish_preview("s1", 100, raw, lo=-0.5, hi=2.5, step=3)
            time.sleep(0.02)  # PUB/SUB joins asynchronously: resend until it is heard
        strip = subscriber.strips("s1")[-1]
        assert (strip.first, strip.step) == (100, 3)
        np.testing.assert_allclose(strip.image, [[-0.5, 2.5], [0.1, 0.7]], atol=1e-6)
        assert subscriber.last_message_s("s1") is not None
    finally:
        subscriber.close()
        publisher.close()


def test_launch_commands_and_dashboard_command_line(tmp_path):
    from engine.cli import build_parser
    from ui.commands.dashboard import dashboard_env, streamlit_command
    from ui.launcher import LaunchRequest

    sim = LaunchRequest("linescan", "tcp://127.0.0.1:5555", seconds=5, phenotype="cpvt", seed=4)
    command = sim.command(tmp_path)
    assert command[1:4] == ["-m", "engine.cli", "simulate"]
    assert ["--stream-to", "tcp://127.0.0.1:5555"] == command[-4:-2]
    with pytest.raises(ValueError, match="file not found"):
        LaunchRequest("replay", "tcp://127.0.0.1:5555", file="x.tif",
                      allowed_dir=str(tmp_path)).command(tmp_path)
    for outside in ("/etc/shadow", "../x.tif", str(tmp_path.parent / "x.tif")):
        with pytest.raises(ValueError, match="only files inside"):
            LaunchRequest("replay", "tcp://127.0.0.1:5555", file=outside,
                          allowed_dir=str(tmp_path)).command(tmp_path)
    with pytest.raises(ValueError, match="replay is off"):
        LaunchRequest("replay", "tcp://127.0.0.1:5555", file="x.tif").command(tmp_path)
    (tmp_path / "in.tif").write_bytes(b"II*\x00")
    replay = LaunchRequest("replay", "tcp://127.0.0.1:5555", file="in.tif",
                           allowed_dir=str(tmp_path)).command(tmp_path)
    assert replay[4] == str((tmp_path / "in.tif").resolve())
    args = build_parser().parse_args(["dashboard", "--store", str(tmp_path / "s.db"), "--port", "9"])
    line = " ".join(streamlit_command(args))
    assert "--server.address 127.0.0.1" in line and "--server.port 9" in line
    # never Streamlit's first-run e-mail prompt (it blocks a start nobody answers)
    assert "--server.headless true" in line
    assert dashboard_env(args)[ENV_STORE] == str(tmp_path / "s.db")


def test_dashboard_opens_the_browser_once_the_page_is_up(monkeypatch):
    import socket
    import subprocess
    import sys

    from ui.commands import dashboard

    opened = []
    monkeypatch.setattr(dashboard.webbrowser, "open", lambda url: opened.append(url) or True)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE)
        try:
            assert dashboard.open_browser_when_up("127.0.0.1", port, alive, timeout_s=10)
        finally:
            alive.communicate(b"")
    assert opened == [f"http://127.0.0.1:{port}"]
    # a server that exited: no browser, and no waiting for the timeout
    assert not dashboard.open_browser_when_up("127.0.0.1", port, alive, timeout_s=30)
    assert len(opened) == 1


def test_quality_card_names_each_parameters_share_when_some_events_lack_one(
        monkeypatch, store_path):
    """A recording whose events mostly touch saturated pixels (the real movie: 0 % with all
    five parameters) gets a caption under the quality grid with each parameter's share."""
    quality = {"schema_version": 3, "resting_snr": 1.8, "saturated_fraction": 0.064,
               "events": {"reported": 46, "measurable_fraction": 0.0,
                          "measured_fraction_by_parameter": {
                              "amplitude_dff0": 0.109, "fwhm_um": 0.109, "fdhm_ms": 0.087,
                              "rise_ms": 0.043, "t50_ms": 0.043}},
               "warnings": []}
    with SqliteStore(store_path) as store:
        _open_stream(store)
        store.write_events(STREAM, [_event(1)])
        store.write_stats(STREAM, _stats(quality=quality))
    app = _run(monkeypatch, store_path)
    assert _metrics(app)["Measurable"] == "0.0 %"
    captions = _texts(app.caption)
    assert "Measured in the reported events: ΔF/F0 10.9 % · FWHM 10.9 % · FDHM 8.7 %" in captions
