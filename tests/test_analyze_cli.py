"""``castream analyze`` as a user runs it, and the analyzer's handling of transport gaps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from acquisition.simulate import LinescanParams, simulate_linescan, write_recording
from engine.analyzer import StreamAnalyzer, StreamInfo
from engine.cli import main
from engine.detectors import ClassicalStreamDetector
from engine.events import EVENT_COLUMNS


@pytest.fixture(scope="module")
def recording_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    for seed in (1, 2):
        rec = simulate_linescan(LinescanParams(n_lines=1200, n_pixels=256), seed=seed)
        write_recording(rec, out, f"cell-{seed}")
    return out


def test_analyze_one_file_writes_the_contract(recording_dir, tmp_path):
    source = recording_dir / "cell-1.tif"
    assert main(["analyze", str(source), "--out", str(tmp_path), "--detector", "classical",
                 "--no-progress"]) == 0
    header = (tmp_path / "events.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == EVENT_COLUMNS
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert labels.shape == tifffile.imread(source).shape
    n_events = len((tmp_path / "events.csv").read_text().splitlines()) - 1
    assert n_events > 0
    ids = set(np.unique(labels)) - {0}
    assert ids <= set(range(1, n_events + 1))  # label ids are event ids
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pixel_um"] == pytest.approx(0.14) and summary["dt_ms"] == pytest.approx(1.5)


def test_analyze_folder_writes_one_result_per_recording(recording_dir, tmp_path):
    assert main(["analyze", str(recording_dir), "--out", str(tmp_path), "--detector",
                 "classical", "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell-1", "cell-2"]
    for name in ("cell-1", "cell-2"):
        assert (tmp_path / name / "events.csv").is_file()


def test_analyze_missing_input_is_a_clear_error(tmp_path, caplog):
    assert main(["analyze", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "o")]) == 1
    assert "no such file or folder" in caplog.text


def test_transport_gap_is_filled_and_counted():
    rec = simulate_linescan(LinescanParams(n_lines=900, n_pixels=128), seed=4)
    info = StreamInfo("s", "TX", (128,), rec.pixel_um, rec.dt_ms)
    analyzer = StreamAnalyzer(info, ClassicalStreamDetector(rec.pixel_um, rec.dt_ms, (128,)))
    analyzer.push(0, rec.data[:300])
    analyzer.push(350, rec.data[350:])  # lines 300..349 never arrived
    analyzer.push(340, rec.data[340:360])  # a late duplicate: skipped
    analyzer.finish()
    assert analyzer.stats.frames_filled == 50
    assert analyzer.stats.frames_skipped == 20
    assert analyzer.stats.frames_in == 850
    assert analyzer.stats.frames_final == 900  # every line, received or filled, is analyzed once
