"""The DESIGN.md invariant: ``analyze`` on a file and streaming that file through ZeroMQ into
``serve`` give the same events (line-scan and movie, accurate and low-latency windows, network
classical and hybrid detectors)."""

from __future__ import annotations

import math

import pytest

import engine.analyze_file as analyze_file_module
from acquisition.replay import replay_file
from acquisition.simulate import (
    LinescanParams,
    MovieParams,
    simulate_linescan,
    simulate_movie,
    write_recording,
)
from acquisition.stream_kind import StreamKind
from engine.analyze_file import analyze_file
from engine.events import EVENT_COLUMNS
from engine.pipeline import EngineConfig
from engine.runtime import background_server
from engine.sinks.tables import read_events_csv
from tests.fixtures_models import make_tiny_model_dir


def _same(a: dict, b: dict) -> bool:
    for column in EVENT_COLUMNS:
        x, y = a[column], b[column]
        if isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif isinstance(x, float):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):  # CSV round trip of floats
                return False
        elif x != y:
            return False
    return True


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    out = tmp_path_factory.mktemp("recordings")
    line = simulate_linescan(LinescanParams(n_lines=1500, n_pixels=256), seed=11)
    movie = simulate_movie(MovieParams(n_frames=120, n_y=32, n_x=128), seed=12)
    return {
        "linescan": write_recording(line, out, "line")["data"],
        "movie": write_recording(movie, out, "movie")["data"],
    }


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "linescan": make_tiny_model_dir(root / "line", ndim=2, behaviour="threshold",
                                        threshold_dff0=0.3),
        "movie": make_tiny_model_dir(root / "movie", ndim=3, behaviour="threshold",
                                     threshold_dff0=0.3),
        # significance against each pixel's resting level (engine.noise_map.RestingLevels):
        # the reported significances depend on those block maps
        "linescan-resting": make_tiny_model_dir(
            root / "line-resting", ndim=2, behaviour="threshold", threshold_dff0=0.3,
            thresholds={"foreground": 0.5, "spark": 0.5, "wave": 0.5, "puff": 0.5,
                        "min_significance": -1e9, "resting_baseline": True}),
        # trained at coarser pixels and longer frames than the recording's: the network sees
        # frames resampled in space and windows resampled in time
        "movie-resampled": make_tiny_model_dir(
            root / "movie-resampled", ndim=3, behaviour="threshold", threshold_dff0=0.3,
            calibration={"pixel_um": 0.35, "dt_ms": 11.0, "resample_pixels": True,
                         "trained_range": {"pixel_um": [0.3, 0.4], "dt_ms": [10.0, 12.0]}}),
    }


CASES = [
    ("linescan", "accurate", "network"),
    ("linescan", "low_latency", "network"),
    ("linescan", "accurate", "classical"),
    ("linescan", "accurate", "hybrid"),
    ("linescan-resting", "accurate", "hybrid"),
    ("movie", "accurate", "network"),
    ("movie", "low_latency", "network"),
    ("movie", "accurate", "hybrid"),
    ("movie-resampled", "accurate", "network"),
]


@pytest.mark.parametrize(("kind", "mode", "detector"), CASES)
def test_replay_through_serve_equals_analyze(kind, mode, detector, recordings, tiny_models,
                                             tmp_path, ipc_endpoint, monkeypatch):
    path = recordings[kind.split("-")[0]]
    # A resampled stream's probabilities are interpolated, so the last float32 bit of the
    # backend, which depends on how windows are batched (torch on the CPU: up to 1.2e-7 for the
    # same window alone or in a batch of 4), reaches the event scores; a detector batches the
    # windows of one push, and serve's worker joins the chunks it finds queued, which depends on
    # timing. So that movie is pushed whole on both sides: the same windows in the same batches.
    # (Each frame and window is resampled on its own: tests/test_network_scale.py.)
    whole = kind == "movie-resampled"
    if whole:
        monkeypatch.setitem(analyze_file_module.CHUNK_FRAMES, StreamKind.MOVIE, 10_000)
    config = EngineConfig(model=tiny_models[kind] if detector != "classical" else None,
                          mode=mode, backend="torch", detector=detector)
    analyze_file(path, tmp_path / "batch", config)
    batch = read_events_csv(tmp_path / "batch" / "events.csv")

    with background_server(endpoint=ipc_endpoint, store=tmp_path / "store.sqlite",
                           record_dir=tmp_path / "raw", config=config) as server:
        replay_file(path, ipc_endpoint, stream=path.stem, rate=None, progress=False,
                    chunk_lines=97, frames_per_message=10_000 if whole else 1)
        assert server.wait_finished(1, timeout_s=120), "stream did not finish"
    streamed = [e.to_dict() for e in server.finished[path.stem]["events"]]

    assert len(batch) > 0, "the recording should contain detectable events"
    assert len(streamed) == len(batch)
    for a, b in zip(batch, streamed, strict=True):
        assert _same(a, b), (a, b)


@pytest.mark.parametrize(("kind", "mode", "detector"), [("linescan", "accurate", "hybrid"),
                                                        ("movie", "accurate", "network")])
def test_replay_through_serve_with_analysis_processes_equals_analyze(
        kind, mode, detector, recordings, tiny_models, tmp_path, ipc_endpoint, monkeypatch):
    """``serve --processes``: the same events through ZeroMQ, the store and an analysis
    process (engine/serve_remote.py) as ``analyze`` on the file."""
    monkeypatch.setenv("CASTREAM_CACHE_DIR", str(tmp_path / "cache"))  # the process inherits it
    path = recordings[kind]
    config = EngineConfig(model=tiny_models[kind], mode=mode, backend="torch", detector=detector)
    analyze_file(path, tmp_path / "batch", config)
    batch = read_events_csv(tmp_path / "batch" / "events.csv")

    with background_server(endpoint=ipc_endpoint, store=tmp_path / "store.sqlite",
                           record_dir=tmp_path / "raw", config=config, processes=1) as server:
        assert server.processes is not None and server.processes.n == 1
        replay_file(path, ipc_endpoint, stream=path.stem, rate=None, progress=False,
                    chunk_lines=97, frames_per_message=1)
        assert server.wait_finished(1, timeout_s=120), "stream did not finish"
    assert not server.failed
    streamed = [e.to_dict() for e in server.finished[path.stem]["events"]]
    assert len(batch) > 0 and len(streamed) == len(batch)
    for a, b in zip(batch, streamed, strict=True):
        assert _same(a, b), (a, b)
