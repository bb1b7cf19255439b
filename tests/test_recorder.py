"""Raw recorder: chunks written by index, gaps zero-filled and listed, crash recovery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from acquisition.raw_files import recover
from acquisition.recorder import RawRecorder, sanitize_stream_id
from acquisition.tiff_source import open_tiff
from acquisition.wire import StartHeader

MOVIE = StartHeader(stream="cell 7/a", mode="frames", dtype="uint16", shape=(4, 6),
                    pixel_um=0.25, dt_ms=6.8, blank=100.0, cell="c7")


def _frames(first: int, n: int) -> np.ndarray:
    return (np.arange(n * 24, dtype=np.uint16).reshape(n, 4, 6) + 1000 * (first + 1))


def test_sanitize_stream_id() -> None:
    assert sanitize_stream_id("cell 7/a") == "cell_7_a"
    assert sanitize_stream_id("../../etc/passwd") == "etc_passwd"
    assert sanitize_stream_id("...") == "stream"
    assert len(sanitize_stream_id("x" * 500)) == 100


def test_out_of_order_chunks_with_gap(tmp_path: Path) -> None:
    recorder = RawRecorder(tmp_path)
    base = recorder.open_stream(MOVIE)
    assert base.name == "cell_7_a"
    recorder.write(MOVIE.stream, 5, 3, _frames(5, 3))  # arrives first
    recorder.write(MOVIE.stream, 0, 2, _frames(0, 2))  # [2, 5) never arrives
    summary = recorder.finish(MOVIE.stream, n_total=10).result(timeout=10)
    recorder.close()
    assert summary.gap_ranges == [[2, 5], [8, 10]] and summary.missing_frames == 5
    assert (summary.n_total, summary.frames_recorded, summary.stopped) == (10, 5, True)
    movie = tifffile.imread(tmp_path / "cell_7_a.tif")
    assert movie.shape == (10, 4, 6)
    np.testing.assert_array_equal(movie[0:2], _frames(0, 2))
    np.testing.assert_array_equal(movie[5:8], _frames(5, 3))
    assert not movie[2:5].any() and not movie[8:].any()
    on_disk = json.loads((tmp_path / "cell_7_a.json").read_text())
    assert on_disk["gap_ranges"] == [[2, 5], [8, 10]] and on_disk["blank"] == 100.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell_7_a.json", "cell_7_a.tif"]


def test_recorded_tiff_carries_calibration(tmp_path: Path) -> None:
    recorder = RawRecorder(tmp_path)
    linescan = StartHeader(stream="ls", mode="linescan", dtype="float32", shape=(8,),
                           pixel_um=0.1, dt_ms=1.25, blank=3.0, cell="c1")
    recorder.open_stream(linescan)
    lines = np.random.default_rng(0).random((50, 8), dtype=np.float32)
    recorder.write("ls", 0, 50, lines)
    recorder.close()
    with open_tiff(tmp_path / "ls.tif") as source:
        assert (source.axes, source.shape, source.dtype) == ("TX", (50, 8), np.float32)
        assert (source.pixel_um, source.dt_ms, source.blank, source.cell) == (0.1, 1.25, 3.0, "c1")
        np.testing.assert_array_equal(source.read(0, 50), lines)


def test_uint32_goes_to_plain_tiff_with_calibration(tmp_path: Path) -> None:
    recorder = RawRecorder(tmp_path)
    header = StartHeader(stream="wide", mode="frames", dtype="uint32", shape=(3, 3),
                         pixel_um=0.5, dt_ms=10.0)
    recorder.open_stream(header)
    recorder.write("wide", 0, 2, np.full((2, 3, 3), 70_000, np.uint32))
    recorder.close()
    with open_tiff(tmp_path / "wide.tif") as source:
        assert (source.shape, source.pixel_um, source.dt_ms) == ((2, 3, 3), 0.5, 10.0)
        assert (source.read(0, 2) == 70_000).all()


def test_same_stream_twice_gets_two_recordings(tmp_path: Path) -> None:
    recorder = RawRecorder(tmp_path)
    for _ in range(2):
        recorder.open_stream(MOVIE)
        recorder.write(MOVIE.stream, 0, 1, _frames(0, 1))
        recorder.finish(MOVIE.stream, n_total=1).result(timeout=10)
    recorder.close()
    assert (tmp_path / "cell_7_a.tif").exists() and (tmp_path / "cell_7_a-1.tif").exists()


def test_recover_after_crash(tmp_path: Path) -> None:
    crashed = RawRecorder(tmp_path)
    crashed.open_stream(MOVIE)
    crashed.write(MOVIE.stream, 0, 3, _frames(0, 3))
    crashed.write(MOVIE.stream, 4, 1, _frames(4, 1))
    # writes are acknowledged once written (on_written / flush); what a crash leaves is what
    # was acknowledged -- like ZeroMQ's own receive buffers, queued writes die with the process
    assert crashed.flush(timeout_s=10)
    # the process dies here: raw files stay, nothing is converted
    with open(tmp_path / "cell_7_a.idx", "ab") as index:
        index.write(b"\x01\x02\x03")  # a half-written index record
    assert (tmp_path / "cell_7_a.raw").exists() and (tmp_path / "cell_7_a.start.json").exists()

    (summary,) = recover(tmp_path)
    assert summary.gap_ranges == [[3, 4]] and summary.n_total == 5 and not summary.stopped
    movie = tifffile.imread(tmp_path / "cell_7_a.tif")
    np.testing.assert_array_equal(movie[:3], _frames(0, 3))
    np.testing.assert_array_equal(movie[4], _frames(4, 1)[0])
    assert not (tmp_path / "cell_7_a.raw").exists()
    assert recover(tmp_path) == []


def test_empty_recording_writes_summary_only(tmp_path: Path) -> None:
    recorder = RawRecorder(tmp_path)
    recorder.open_stream(MOVIE)
    summary = recorder.finish(MOVIE.stream, n_total=0).result(timeout=10)
    recorder.close()
    assert summary.tif is None and summary.n_total == 0
    assert [p.name for p in tmp_path.iterdir()] == ["cell_7_a.json"]
