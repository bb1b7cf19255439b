"""``castream analyze`` as a user runs it, and the analyzer's handling of transport gaps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from acquisition.simulate import LinescanParams, simulate_linescan, write_recording
from acquisition.stream_kind import StreamKind
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
    info = StreamInfo("s", StreamKind.LINESCAN, (128,), rec.pixel_um, rec.dt_ms)
    analyzer = StreamAnalyzer(info, ClassicalStreamDetector(rec.pixel_um, rec.dt_ms, (128,)))
    analyzer.push(0, rec.data[:300])
    analyzer.push(350, rec.data[350:])  # lines 300..349 never arrived
    analyzer.push(340, rec.data[340:360])  # a late duplicate: skipped
    analyzer.finish()
    assert analyzer.stats.frames_filled == 50
    assert analyzer.stats.frames_skipped == 20
    assert analyzer.stats.frames_in == 850
    assert analyzer.stats.frames_final == 900  # every line, received or filled, is analyzed once


@pytest.fixture(scope="module")
def plain_2d_tiff(tmp_path_factory):
    """A 2-D TIFF without any metadata: a line-scan or a single image, nobody can tell."""
    rec = simulate_linescan(LinescanParams(n_lines=600, n_pixels=128), seed=3)
    path = tmp_path_factory.mktemp("plain") / "plain.tif"
    tifffile.imwrite(path, rec.data)
    return path, rec


def test_2d_image_without_axes_is_a_clear_error(plain_2d_tiff, tmp_path, caplog):
    path, rec = plain_2d_tiff
    out = tmp_path / "out"
    argv = ["analyze", str(path), "--out", str(out), "--pixel-um", str(rec.pixel_um),
            "--dt-ms", str(rec.dt_ms), "--detector", "classical", "--no-progress"]
    assert main(argv) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "--axes TX" in errors[0] and "2-D image" in errors[0]
    assert not out.exists()  # a failed run leaves no folder behind
    assert main([*argv, "--axes", "YX"]) == 1
    assert "no Ca2+ event can be found" in caplog.text and not out.exists()
    assert main([*argv, "--axes", "TX"]) == 0
    assert json.loads((out / "summary.json").read_text())["axes"] == "TX"


def test_interrupted_analyze_leaves_no_result_looking_files(recording_dir, tmp_path,
                                                            monkeypatch):
    import engine.analyze_file as analyze_file
    from engine.pipeline import EngineConfig

    def interrupted(analyzer, chunks, labels):
        for first, frames in chunks:
            labels.write(first, np.zeros_like(frames, dtype=np.int32))
            raise KeyboardInterrupt  # Ctrl-C in the middle of the recording

    monkeypatch.setattr(analyze_file, "run_stream", interrupted)
    config = EngineConfig(detector="classical")
    with pytest.raises(KeyboardInterrupt):
        analyze_file.analyze_file(recording_dir / "cell-1.tif", tmp_path / "new" / "out", config)
    assert not (tmp_path / "new").exists()  # folders it created are gone
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(KeyboardInterrupt):
        analyze_file.analyze_file(recording_dir / "cell-1.tif", existing, config)
    assert list(existing.iterdir()) == []  # no labels.tif, no staging folder


def test_a_second_run_does_not_replace_results_unless_asked(recording_dir, tmp_path, caplog):
    source = str(recording_dir / "cell-1.tif")
    args = ["analyze", source, "--out", str(tmp_path), "--detector", "classical",
            "--no-progress"]
    assert main(args) == 0
    (tmp_path / "events.csv").write_text("kept\n")  # stands for the earlier run's results
    assert main(args) == 1
    assert "already holds results of an earlier analysis (events.csv" in caplog.text
    assert "--force" in caplog.text
    assert (tmp_path / "events.csv").read_text() == "kept\n"
    assert not any(p.name.startswith(".castream-partial") for p in tmp_path.iterdir())
    assert main([*args, "--force"]) == 0
    assert (tmp_path / "events.csv").read_text().startswith("event_id,")
    # a folder of several recordings is checked before any of them is analysed
    folder = tmp_path / "many"
    assert main(["analyze", str(recording_dir), "--out", str(folder), "--detector", "classical",
                 "--no-progress"]) == 0
    stamp = (folder / "cell-2" / "summary.json").stat().st_mtime_ns
    (folder / "cell-1" / "labels.tif").unlink()
    (folder / "cell-1" / "events.csv").unlink()
    (folder / "cell-1" / "overview.png").unlink()
    assert main(["analyze", str(recording_dir), "--out", str(folder), "--detector",
                 "classical", "--no-progress"]) == 1
    assert (folder / "cell-2" / "summary.json").stat().st_mtime_ns == stamp
