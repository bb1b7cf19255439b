"""Replay a TIFF into the ingest: the recorded TIFF holds exactly the input pixels."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from acquisition.ingest import ChunkReceived, StreamStarted
from acquisition.replay import replay_file
from acquisition.tiff_source import open_tiff

TIMEOUT_S = 30.0


def _write_linescan(path: Path, lines: np.ndarray) -> None:
    info = '{"castream": {"pixel_um": 0.2, "dt_ms": 1.5, "blank": 100.0, "cell": "c1"}}'
    tifffile.imwrite(path, lines, imagej=True, resolution=(5, 1 / 1.5),
                     metadata={"axes": "YX", "unit": "um", "yunit": "ms", "finterval": 0.0015,
                               "Info": info})


def test_linescan_replay_is_recorded_exactly(ingest_factory, tmp_path: Path) -> None:
    lines = np.random.default_rng(0).integers(0, 65_535, (6000, 512), dtype=np.uint16)
    _write_linescan(tmp_path / "cell01.tif", lines)
    ingest = ingest_factory(record_dir=tmp_path / "rec", queue_size=10_000)
    summary = replay_file(tmp_path / "cell01.tif", ingest.endpoint, rate=None, chunk_lines=64,
                          progress=False)
    assert (summary.stream, summary.items_sent, summary.messages) == ("cell01", 6000, 96)
    assert ingest.wait_until_stopped(["cell01"], TIMEOUT_S)
    started = ingest.get(timeout_s=1)
    assert isinstance(started, StreamStarted)
    assert (started.header.blank, started.header.cell, started.header.dt_ms) == (100.0, "c1", 1.5)
    stats = ingest.stats()["cell01"]
    assert (stats.frames_received, stats.frames_recorded, stats.missing_frames) == (6000,) * 2 + (0,)
    with open_tiff(tmp_path / "rec" / "cell01.tif") as recorded:
        assert (recorded.axes, recorded.pixel_um, recorded.dt_ms) == ("TX", 0.2, 1.5)
        assert recorded.blank == 100.0
        np.testing.assert_array_equal(recorded.read(0, 6000), lines)
    report = json.loads((tmp_path / "rec" / "cell01.json").read_text())
    assert report["gap_ranges"] == [] and report["n_total"] == 6000 and report["stopped"]


def test_movie_replay_is_recorded_exactly(ingest_factory, tmp_path: Path) -> None:
    movie = np.random.default_rng(1).integers(0, 65_535, (500, 64, 512), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", movie, imagej=True, resolution=(5, 5),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 0.0068})
    ingest = ingest_factory(record_dir=tmp_path / "rec", queue_size=10_000)
    summary = replay_file(tmp_path / "movie.tif", ingest.endpoint, stream="movie 1", rate=None,
                          progress=False)
    assert (summary.items_sent, summary.messages) == (500, 502)
    assert ingest.wait_until_stopped(["movie 1"], TIMEOUT_S)
    stats = ingest.stats()["movie 1"]
    assert (stats.frames_recorded, stats.missing_frames, stats.errors) == (500, 0, 0)
    recorded = tifffile.imread(tmp_path / "rec" / "movie_1.tif")
    assert recorded.dtype == np.uint16
    np.testing.assert_array_equal(recorded, movie)


def test_pacing_follows_recorded_interval(ingest_factory, tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "paced.tif", np.zeros((20, 4, 8), np.uint16))
    ingest = ingest_factory()
    slow = replay_file(tmp_path / "paced.tif", ingest.endpoint, rate=1.0, pixel_um=1, dt_ms=10,
                       progress=False)
    fast = replay_file(tmp_path / "paced.tif", ingest.endpoint, rate=4.0, pixel_um=1, dt_ms=10,
                       frames_per_message=5, progress=False)
    assert slow.seconds >= 0.19  # 20 frames x 10 ms, the last one sent when "acquired"
    assert fast.seconds >= 0.045 and fast.messages == 6
    assert ingest.wait_until_stopped(["paced"], TIMEOUT_S)
    chunks = [i for i in _all_items(ingest) if isinstance(i, ChunkReceived)]
    assert sum(c.header.n for c in chunks) == 40


def test_replay_rejects_bad_rate_and_dtype(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f64.tif", np.zeros((5, 4, 8), np.float64))
    with pytest.raises(ValueError, match="cannot be streamed"):
        replay_file(tmp_path / "f64.tif", "tcp://127.0.0.1:1", pixel_um=1, dt_ms=1,
                    progress=False)
    with pytest.raises(ValueError, match="rate"):
        replay_file(tmp_path / "f64.tif", "tcp://127.0.0.1:1", rate=0, progress=False)


def test_cli_replay_into_cli_ingest(tmp_path: Path, ipc_endpoint: str, capsys) -> None:
    from engine.cli import main

    movie = np.arange(30 * 4 * 8, dtype=np.uint16).reshape(30, 4, 8)
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", movie)
    results: dict[str, int] = {}
    ingest = threading.Thread(target=lambda: results.update(ingest=main([
        "ingest", "--endpoint", ipc_endpoint, "--record-dir", str(tmp_path / "rec"),
        "--streams", "2", "--seconds", str(TIMEOUT_S)])))
    ingest.start()
    results["replay"] = main(["replay", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"),
                              "--endpoint", ipc_endpoint, "--fast", "--stream", "cell",
                              "--pixel-um", "0.2", "--dt-ms", "5", "--no-progress"])
    ingest.join(TIMEOUT_S)
    assert results == {"ingest": 0, "replay": 0}
    for name in ("cell-1", "cell-2"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "rec" / f"{name}.tif"), movie)
    table = capsys.readouterr().out
    assert "summary" in table and "cell-1" in table and "received" in table


def test_cli_replay_reports_bad_file(tmp_path: Path) -> None:
    from engine.cli import main

    (tmp_path / "bad.tif").write_text("not a tiff")
    assert main(["replay", str(tmp_path / "bad.tif"), "--endpoint", "tcp://127.0.0.1:1",
                 "--no-progress"]) == 1


def _all_items(ingest) -> list:
    items = []
    while (item := ingest.get(timeout_s=0.2)) is not None:
        items.append(item)
    return items
