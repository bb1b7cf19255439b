"""Tests of the simulated microscope (acquisition.simulate) and ``castream simulate``."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import tifffile

from acquisition import labels
from acquisition.simulate import (
    EVENT_COLUMNS,
    PHENOTYPES,
    LinescanParams,
    MovieParams,
    read_ground_truth,
    simulate_linescan,
    simulate_movie,
    stream_recording,
    write_dotti_folder,
    write_recording,
)
from acquisition.simulate.groundtruth import crossing_after, crossing_before, measure_block
from engine import events as engine_events

FEATURES = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")
KIND_CLASS = {"spark": labels.SPARK, "puff": labels.PUFF, "wave": labels.WAVE}


def _spark_features(phenotype: str, seeds: range) -> dict[str, np.ndarray]:
    rows = []
    for seed in seeds:
        rec = simulate_linescan(LinescanParams(phenotype=phenotype, duration_s=8.0), seed=seed)
        rows += [[ev[f] for f in FEATURES] for ev in rec.events if ev["kind"] == "spark"]
    table = np.array(rows)
    table = table[np.isfinite(table).all(axis=1)]
    return {f: table[:, i] for i, f in enumerate(FEATURES)}


@pytest.fixture(scope="module")
def wt_sparks() -> dict[str, np.ndarray]:
    return _spark_features("wt", range(3))


@pytest.fixture(scope="module")
def cpvt_sparks() -> dict[str, np.ndarray]:
    return _spark_features("cpvt", range(100, 103))


@pytest.fixture(scope="module")
def busy_linescan():
    stats = replace(PHENOTYPES["cpvt"], wave_rate_per_cell_s=1.0)
    return simulate_linescan(LinescanParams(phenotype="cpvt", duration_s=6.0, stats=stats), seed=5)


@pytest.fixture(scope="module")
def small_movie():
    stats = replace(PHENOTYPES["cpvt"], wave_rate_per_cell_s=4.0)
    return simulate_movie(MovieParams(phenotype="cpvt", n_frames=150, stats=stats), seed=3)


def test_columns_equal_engine_schema(busy_linescan):
    assert EVENT_COLUMNS == engine_events.EVENT_COLUMNS
    assert busy_linescan.events
    for row in busy_linescan.events:
        assert tuple(row) == EVENT_COLUMNS
        engine_events.Event(**row)  # valid kinds and fields
        assert row["score"] == 1.0 and row["cell"] == busy_linescan.cell


def test_deterministic_for_a_seed():
    params = LinescanParams(n_lines=600)
    a, b = simulate_linescan(params, seed=11), simulate_linescan(params, seed=11)
    c = simulate_linescan(params, seed=12)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.instance_mask, b.instance_mask)
    assert np.array_equal(a.clean_dff0, b.clean_dff0)
    assert [r["event_id"] for r in a.events] == [r["event_id"] for r in b.events]
    assert not np.array_equal(a.data, c.data)


def test_linescan_shapes_and_calibration():
    rec = simulate_linescan(LinescanParams(duration_s=0.3), seed=1)
    assert rec.data.shape == (200, 512) and rec.data.dtype == np.uint16
    assert rec.class_mask.dtype == np.uint8 and rec.instance_mask.dtype == np.int32
    assert rec.clean_dff0.dtype == np.float32 and rec.clean_dff0.shape == rec.data.shape
    assert (rec.axes, rec.pixel_um, rec.dt_ms, rec.phenotype) == ("TX", 0.14, 1.5, "wt")
    assert all(math.isnan(r["y_um"]) for r in rec.events)


def test_movie_shapes_and_calibration(small_movie):
    rec = small_movie
    assert rec.data.shape == (150, 64, 512) and rec.data.dtype == np.uint16
    assert rec.class_mask.shape == rec.instance_mask.shape == rec.clean_dff0.shape == rec.data.shape
    assert (rec.axes, rec.pixel_um, rec.dt_ms) == ("TYX", 0.2, 6.8)
    assert all(0 <= r["y_um"] < 64 * 0.2 for r in rec.events)


@pytest.mark.parametrize("fixture", ["busy_linescan", "small_movie"])
def test_ground_truth_consistency(fixture, request):
    rec = request.getfixturevalue(fixture)
    assert {r["kind"] for r in rec.events} == {"spark", "puff", "wave"}
    ids = np.unique(rec.instance_mask)
    assert list(ids[1:]) == [r["event_id"] for r in rec.events] == list(range(1, len(rec.events) + 1))
    kind_of = np.zeros(len(rec.events) + 1, np.uint8)
    for row in rec.events:
        kind_of[row["event_id"]] = KIND_CLASS[row["kind"]]
        assert row["t_start_ms"] <= row["t_peak_ms"] <= row["t_end_ms"]
        peak_t = round(row["t_peak_ms"] / rec.dt_ms)
        peak_x = round(row["x_um"] / rec.pixel_um)
        peak_yx = (peak_x,) if rec.axes == "TX" else (round(row["y_um"] / rec.pixel_um), peak_x)
        assert rec.instance_mask[(peak_t, *peak_yx)] == row["event_id"]  # owns its peak pixel
        times = np.nonzero(rec.instance_mask == row["event_id"])[0]
        assert times.min() * rec.dt_ms == row["t_start_ms"]
        assert times.max() * rec.dt_ms == row["t_end_ms"]
    assert np.array_equal(rec.class_mask, kind_of[rec.instance_mask])
    assert np.all(rec.clean_dff0[rec.instance_mask > 0] > 0)


def test_ignore_rim_only_on_background():
    params = LinescanParams(phenotype="cpvt", duration_s=1.0, ignore_rim=True)
    rec = simulate_linescan(params, seed=2)
    rim = rec.class_mask == labels.IGNORE
    assert rim.any() and not np.any(rec.instance_mask[rim])


def test_offset_in_extracellular_pixels_and_bleaching():
    params = LinescanParams(duration_s=6.0)
    rec = simulate_linescan(params, seed=4)
    outside = rec.data[:, :10].astype(float)  # the cell starts ≥ 5 % of the line in
    expected = rec.blank + params.optics.gain_counts_per_photon * params.optics.background_photons
    assert abs(outside.mean() - expected) < 1.0
    cell = rec.data[:, 200:300].astype(float) - rec.blank
    ratio = cell[-500:].mean() / cell[:500].mean()
    assert ratio == pytest.approx(math.exp(-5.3 / params.optics.bleach_tau_s), abs=0.03)


def test_crossings_are_linearly_interpolated():
    profile = np.array([0.0, 1.0, 2.0, 4.0, 2.0, 0.0])
    assert crossing_before(profile, 3, 2.0 * 0.75) == pytest.approx(1.5)
    assert crossing_after(profile, 3, 1.0) == pytest.approx(4.5)
    assert math.isnan(crossing_after(profile[:4], 3, 1.0))


def test_measure_block_on_a_known_gaussian():
    x_um = np.arange(100) * 0.1
    block = 0.8 * np.exp(-((x_um - 5.0) ** 2) / (2 * 0.85**2))[None, :] * np.r_[0, 0.5, 1, 0.5, 0][:, None]
    row = measure_block(block, (10, 0), dt_ms=2.0, pixel_um=0.1)
    assert row["amplitude_dff0"] == pytest.approx(0.8)
    assert row["fwhm_um"] == pytest.approx(2.3548 * 0.85, abs=0.01)
    assert row["fdhm_ms"] == pytest.approx(4.0)
    assert row["t50_ms"] == pytest.approx(2.0) and row["rise_ms"] == pytest.approx(3.6)
    assert (row["t_peak_ms"], row["x_um"]) == (24.0, pytest.approx(5.0))


def test_wt_sparks_in_physiological_ranges(wt_sparks):
    s = wt_sparks
    assert len(s["amplitude_dff0"]) >= 40
    assert 1.5 <= np.median(s["fwhm_um"]) <= 2.5
    assert 5.0 <= np.median(s["rise_ms"]) <= 15.0
    assert 20.0 <= np.median(s["t50_ms"]) <= 40.0
    assert 0.3 <= np.median(s["amplitude_dff0"]) <= 0.8
    assert np.mean((s["amplitude_dff0"] > 0.2) & (s["amplitude_dff0"] < 1.5)) > 0.85
    assert np.mean((s["fwhm_um"] > 1.2) & (s["fwhm_um"] < 3.0)) > 0.9


def test_cpvt_shifts_sparks_in_documented_direction(wt_sparks, cpvt_sparks):
    assert len(cpvt_sparks["amplitude_dff0"]) > 1.8 * len(wt_sparks["amplitude_dff0"])
    for feature in FEATURES:
        assert np.median(cpvt_sparks[feature]) > np.median(wt_sparks[feature]), feature
    # overlapping, not separable: many CPVT sparks look like WT ones
    assert np.mean(cpvt_sparks["t50_ms"] < np.percentile(wt_sparks["t50_ms"], 75)) > 0.2


def test_write_read_round_trip(tmp_path, busy_linescan, small_movie):
    for rec, stem in ((busy_linescan, "ls"), (small_movie, "mv")):
        paths = write_recording(rec, tmp_path, stem)
        back = read_ground_truth(tmp_path, stem)
        assert np.array_equal(back.data, rec.data)
        assert np.array_equal(back.class_mask, rec.class_mask)
        assert np.array_equal(back.instance_mask, rec.instance_mask)
        assert (back.pixel_um, back.dt_ms, back.blank, back.axes, back.cell) == (
            rec.pixel_um, rec.dt_ms, rec.blank, rec.axes, rec.cell)
        for got, want in zip(back.events, rec.events, strict=True):
            assert got["event_id"] == want["event_id"] and got["kind"] == want["kind"]
            np.testing.assert_allclose([got[f] for f in FEATURES + ("y_um",)],
                                       [want[f] for f in FEATURES + ("y_um",)], rtol=1e-8)
        with tifffile.TiffFile(paths["data"]) as tif:
            assert tif.imagej_metadata["finterval"] == pytest.approx(rec.dt_ms / 1e3)
            x_res = tif.pages[0].tags["XResolution"].value
            assert x_res[1] / x_res[0] == pytest.approx(rec.pixel_um)


def test_dotti_folder_layout(tmp_path, small_movie):
    write_dotti_folder([small_movie, small_movie], tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"01_video.tif", "01_class_label.tif", "01_event_label.tif", "02_video.tif"} <= set(names)
    labels_back = tifffile.imread(tmp_path / "02_event_label.tif")
    assert np.array_equal(labels_back, small_movie.instance_mask)


class FakePublisher:
    def __init__(self):
        self.started, self.chunks, self.stopped = None, [], False

    def start(self, mode, dtype, shape, pixel_um, dt_ms, blank=None, cell=None):
        self.started = dict(mode=mode, dtype=dtype, shape=shape, pixel_um=pixel_um, dt_ms=dt_ms)

    def send(self, array):
        self.chunks.append(np.array(array))

    def stop(self):
        self.stopped = True


def test_stream_recording_sends_everything(busy_linescan):
    pub = FakePublisher()
    sent = stream_recording(busy_linescan, pub, rate=0)
    assert sent == busy_linescan.data.shape[0] and pub.stopped
    assert pub.started == {"mode": "linescan", "dtype": "uint16", "shape": (512,),
                           "pixel_um": 0.14, "dt_ms": 1.5}
    assert np.array_equal(np.concatenate(pub.chunks), busy_linescan.data)


def test_stream_recording_through_publisher_to_ingest(ingest_factory, drain, chunks_of):
    rec = simulate_movie(MovieParams(n_frames=20), seed=1)
    ingest = ingest_factory()
    assert stream_recording(rec, ingest.endpoint, rate=0, stream="sim") == 20
    items = drain(ingest, timeout_s=1.0)["sim"]
    assert items[0].header.mode == "frames" and items[0].header.pixel_um == 0.2
    assert np.array_equal(chunks_of(items), rec.data)


def test_tiff_source_reads_simulated_calibration(tmp_path, busy_linescan, small_movie):
    from acquisition.tiff_source import open_tiff

    for rec, stem in ((busy_linescan, "ls"), (small_movie, "mv")):
        paths = write_recording(rec, tmp_path, stem)
        with open_tiff(paths["data"]) as src:
            assert (src.axes, src.shape) == (rec.axes, rec.data.shape)
            assert src.pixel_um == pytest.approx(rec.pixel_um)
            assert src.dt_ms == pytest.approx(rec.dt_ms)
            assert src.blank == rec.blank and src.cell == rec.cell
            assert np.array_equal(src.read(0, 10), rec.data[:10])


def test_cli_simulate_writes_files(tmp_path):
    from engine.cli import main

    code = main(["simulate", "--mode", "movie", "--phenotype", "cpvt", "--seconds", "0.1",
                 "--seed", "7", "--n-cells", "2", "--out", str(tmp_path), "--brightness", "30"])
    assert code == 0
    stems = sorted(p.name for p in tmp_path.glob("*_events.csv"))
    assert stems == ["sim-movie-cpvt-7_events.csv", "sim-movie-cpvt-8_events.csv"]
    back = read_ground_truth(tmp_path, "sim-movie-cpvt-7")
    assert back.data.shape == (15, 64, 512) and back.phenotype == "cpvt"


def test_short_scan_lines_simulate():
    """A short scan line (128 px, 18 µm) leaves no room for a nucleus; it must still simulate."""
    for seed in range(8):
        rec = simulate_linescan(LinescanParams(duration_s=0.5, n_pixels=128), seed=seed)
        assert rec.data.shape == (333, 128)
