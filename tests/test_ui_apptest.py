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
from ui.config import ENV_EVENTS, ENV_INGEST, ENV_STALE_S, ENV_STORE  # noqa: E402

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
        "frames_recorded": 2000,
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
    # 4 sparks / (512 px · 0.2 µm / 100 µm) / (1900 lines · 1.5 ms) ≈ 1.37
    assert metrics["Spark frequency (/100 µm/s)"] == "1.37"
    captions = _texts(app.caption)
    assert "confidence **81 %**" in captions and "from **4 sparks**" in captions
    assert "classical" in captions and "no model directory given" in captions
    table = app.dataframe[0].value
    assert list(table["event_id"]) == [5, 4, 3, 2, 1]  # newest first
    assert "y_um" not in table.columns  # line-scan
    assert not app.error and not app.warning


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
