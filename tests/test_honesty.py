"""Honest outputs: significance filter, saturation, unresolvable parameters, quality report,
and a cell class that noise cannot make confident (DESIGN.md "Honest outputs")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

from acquisition.simulate import (
    EventStats,
    LinescanParams,
    MovieParams,
    OpticsParams,
    simulate_linescan,
    simulate_movie,
)
from acquisition.stream_kind import StreamKind
from engine import honesty
from engine.analyze_file import analyze_file
from engine.instances import Instance
from engine.pipeline import EngineConfig, analyze_array
from engine.quality import QualityMonitor, SaturationBuffer
from engine.significance import DEFAULT_MIN_SIGNIFICANCE, local_significance, significance
from engine.sinks.tables import read_events_csv

PIXEL_UM, DT_MS = 0.14, 1.5


def _instance(dff0: np.ndarray, mask: np.ndarray, saturated=None) -> Instance:
    """An instance covering the whole crop of a line-scan ``(T, X)``."""
    dff0, mask = dff0[:, None, :], mask[:, None, :]
    rows = np.flatnonzero(mask.any(axis=(1, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    origin = (int(rows[0]), 0, int(cols[0]))
    crop = mask[rows[0]:rows[-1] + 1, :, cols[0]:cols[-1] + 1]
    sat = None if saturated is None else saturated[:, None, :]
    return Instance("spark", 1.0, crop, origin, dff0.astype(np.float32), (0, 0, 0), "TX",
                    saturated=sat)


def _spark(shape=(80, 120), amplitude=1.0, t0=30, x0=60, sigma_px=5.0, tau=12.0):
    t = np.arange(shape[0])[:, None]
    x = np.arange(shape[1])[None, :]
    time_course = np.where(t >= t0, np.exp(-(t - t0) / tau), 0.0)
    return amplitude * time_course * np.exp(-0.5 * ((x - x0) / sigma_px) ** 2)


def test_significance_keeps_weak_real_spark_and_drops_noise():
    """A spark whose peak is only 1.6 pixel-noise SDs is well above the local noise once
    averaged over a resolution element; pure noise in the same mask is not."""
    rng = np.random.default_rng(0)
    noise_sd = 0.5
    clean = _spark(amplitude=0.8)
    dff0 = clean + rng.normal(0, noise_sd, clean.shape)
    spark_mask = clean > 0.2 * clean.max()
    z_spark = significance(_instance(dff0, spark_mask), PIXEL_UM, DT_MS)
    noise_only = rng.normal(0, noise_sd, clean.shape)
    z_noise = significance(_instance(noise_only, spark_mask), PIXEL_UM, DT_MS)
    assert z_spark > 1.4 * DEFAULT_MIN_SIGNIFICANCE
    assert z_noise < 0.8 * DEFAULT_MIN_SIGNIFICANCE


def test_significance_ignores_saturated_pixels():
    rng = np.random.default_rng(1)
    clean = _spark(amplitude=2.0)
    dff0 = clean + rng.normal(0, 0.3, clean.shape)
    mask = clean > 0.2 * clean.max()
    saturated = np.zeros_like(mask)
    saturated[25:45, 50:70] = True  # the whole core: only the weaker rim is left
    z_all = significance(_instance(dff0, mask), PIXEL_UM, DT_MS)
    instance = _instance(dff0, mask, saturated)
    z_unsat = significance(instance, PIXEL_UM, DT_MS, instance.saturated)
    assert z_unsat < 0.6 * z_all


def test_local_significance_drops_a_patch_bright_at_rest_and_keeps_a_spark():
    """A stretch whose ΔF/F0 sits 0.4 above its surroundings all the time (F0 off by a fixed
    amount, as at a cell edge) passes the surroundings test but not the test against its own
    pixels before the proposal; a real spark passes both."""
    rng = np.random.default_rng(2)
    noise_sd = 0.3
    clean = _spark(amplitude=1.5)
    mask = clean > 0.2 * clean.max()
    static = np.zeros(clean.shape)
    static[:, 50:71] = 0.4  # the whole time, the mask's columns and a little more
    patch = static + rng.normal(0, noise_sd, clean.shape)
    spark = clean + rng.normal(0, noise_sd, clean.shape)
    z_patch = significance(_instance(patch, mask), PIXEL_UM, DT_MS)
    local_patch = local_significance(_instance(patch, mask), PIXEL_UM, DT_MS)
    local_spark = local_significance(_instance(spark, mask), PIXEL_UM, DT_MS)
    assert z_patch > 2 * DEFAULT_MIN_SIGNIFICANCE  # fooled by the offset
    assert local_patch < 0.8 * DEFAULT_MIN_SIGNIFICANCE
    assert local_spark > 2 * DEFAULT_MIN_SIGNIFICANCE
    at_start = mask.copy()
    at_start[:int(np.argmax(mask.any(axis=1)))] = True  # no frame before it: cannot be told
    assert math.isnan(local_significance(_instance(spark, at_start), PIXEL_UM, DT_MS))


def test_unresolvable_parameters_are_empty_with_a_reason():
    fields = {"amplitude_dff0": 0.8, "fwhm_um": 0.2, "fdhm_ms": 25.0, "rise_ms": 2.0,
              "t50_ms": math.nan}
    flags = honesty.resolution_flags(fields, pixel_um=0.2, dt_ms=6.8)
    assert fields["amplitude_dff0"] == 0.8 and fields["fdhm_ms"] == 25.0
    assert math.isnan(fields["fwhm_um"]) and math.isnan(fields["rise_ms"])
    assert math.isnan(fields["t50_ms"])
    assert flags == ["fwhm_um<2px", "rise_ms<2samples", "t50_ms_unmeasured"]
    assert not honesty.measurable(fields)


def test_saturation_level_and_buffer():
    assert honesty.saturation_level("uint8") == 255
    assert honesty.saturation_level("uint16") == 65535
    assert honesty.saturation_level("float32") is None
    assert honesty.saturation_level("uint16", 4095) == 4095
    buffer = SaturationBuffer((4,))
    buffer.add(0, None, 3)
    sat = np.zeros((2, 4), bool)
    sat[1, 2] = True
    buffer.add(3, sat, 2)
    block = buffer.take(1, 5)  # frames 1-2 were never saturated
    assert block.shape == (4, 4) and block[3, 2] and block.sum() == 1
    assert buffer.take(5, 5) is None


def _noise_only_linescan(seed: int, **optics) -> object:
    stats = EventStats(spark_rate_per_100um_s=0.0, puff_rate_per_100um_s=0.0,
                       wave_rate_per_cell_s=0.0)
    return simulate_linescan(LinescanParams(duration_s=4.0, stats=stats,
                                            optics=OpticsParams(**optics)), seed)


@pytest.mark.parametrize("detector", ["network", "classical"])
def test_noise_only_recording_gives_almost_no_events_and_no_class(detector):
    rec = _noise_only_linescan(3, resting_photons=4.0)
    assert not rec.events
    result = analyze_array(rec.data, StreamKind.LINESCAN, rec.pixel_um, rec.dt_ms, blank=rec.blank,
                           detector=detector)
    duration_s = rec.data.shape[0] * rec.dt_ms / 1e3
    assert len(result.events) / duration_s <= 0.5, [e.significance for e in result.events]
    assert result.cell is None or result.cell.label == "undecided"


def test_noise_only_movie_gives_almost_no_events_and_no_class():
    stats = EventStats(spark_rate_per_100um_s=0.0, puff_rate_per_100um_s=0.0,
                       wave_rate_per_cell_s=0.0)
    rec = simulate_movie(MovieParams(duration_s=2.0, n_y=32, n_x=256, stats=stats,
                                     optics=OpticsParams(resting_photons=5.0)), 8)
    result = analyze_array(rec.data, StreamKind.MOVIE, rec.pixel_um, rec.dt_ms, blank=rec.blank)
    assert len(result.events) / 2.0 <= 0.5, [e.significance for e in result.events]
    assert result.cell is None or result.cell.label == "undecided"


def test_saturated_recording_warns_and_keeps_saturated_pixels_out(tmp_path, caplog):
    rec = simulate_linescan(LinescanParams(duration_s=4.0), seed=11)
    level = float(np.percentile(rec.data, 99.7))  # the brightest spark cores saturate
    data = np.minimum(rec.data, level).astype(np.uint16)
    path = tmp_path / "saturated.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "YX"},
                     resolution=(1 / rec.pixel_um, 1 / rec.dt_ms))
    with caplog.at_level("WARNING"):
        summary = analyze_file(path, tmp_path / "out", EngineConfig(),
                               pixel_um=rec.pixel_um, dt_ms=rec.dt_ms, blank=rec.blank,
                               saturation_counts=level, axes="TX")
    quality = summary["quality"]
    assert quality["saturated_fraction"] > 0.001
    assert any("saturated" in w for w in quality["warnings"])
    assert "saturated" in caplog.text
    events = read_events_csv(tmp_path / "out" / "events.csv")
    flagged = [e for e in events if "saturated" in e["flags"].split(";")]
    assert flagged, "the brightest sparks touch saturated pixels"
    for event in flagged:
        assert all(math.isnan(event[p]) for p in honesty.PARAMETERS)
        assert math.isfinite(event["t_peak_ms"]) and math.isfinite(event["significance"])
    assert quality["events"]["with_saturated_pixels"] == len(flagged)
    # each parameter's measured fraction counts the events that carry it (saturated: none)
    by_parameter = quality["events"]["measured_fraction_by_parameter"]
    assert set(by_parameter) == set(honesty.PARAMETERS)
    for name in honesty.PARAMETERS:
        carried = sum(math.isfinite(e[name]) for e in events)
        assert by_parameter[name] == pytest.approx(carried / len(events))
        assert by_parameter[name] <= 1 - len(flagged) / len(events) + 1e-9
    assert quality["events"]["measurable_fraction"] <= min(by_parameter.values())


def test_quality_report_measures_snr_bleaching_and_calibration():
    rng = np.random.default_rng(5)
    n, x = 2000, 256
    f0 = np.full(x, 400.0)
    f0[:40] = 0.0  # extracellular
    bleach = np.linspace(1.0, 0.6, n)[:, None]
    frames = rng.poisson(f0 * bleach) + 100.0
    monitor = QualityMonitor((x,), pixel_um=0.3, dt_ms=1.5, saturation_counts=65535,
                             calibration_source={"pixel_um": "flag", "dt_ms": "metadata"},
                             trained_range={"pixel_um": [0.1, 0.2], "dt_ms": [1.0, 2.0]})
    for first in range(0, n, 250):
        monitor.observe(first, frames[first:first + 250])
        monitor.observe_baseline(np.mean(frames[first:first + 250], axis=0) - 100.0)
    report = monitor.report()
    expected_snr = np.sqrt(400 * 0.65)  # Poisson: SNR = sqrt(F0) near the end of bleaching
    assert report["resting_snr"] == pytest.approx(expected_snr, rel=0.15)
    assert report["bleaching_fraction"] == pytest.approx(0.38, abs=0.05)
    assert report["saturated_fraction"] == 0.0
    assert report["calibration"]["outside"] == ["pixel_um"]
    assert any("trained range" in w for w in report["warnings"])
    assert any("--pixel-um" in w for w in report["warnings"])


def test_rises_at_a_slow_frame_rate_are_warned_about():
    """At 6.8 ms per frame two samples (13.6 ms) outlast a spark's typical ~10 ms rise: the
    reported rise times are warned about (their count is in the report); at 1.5 ms per line
    they are not, nor when no rise was reported. The counts are in the report either way."""
    def report(dt_ms: float, under: int, reported: int) -> dict:
        monitor = QualityMonitor((16, 16), pixel_um=0.2, dt_ms=dt_ms)
        for _ in range(under):
            monitor.count_event("rise_ms<2samples", measured=())
        for _ in range(reported):
            monitor.count_event("", measured=honesty.PARAMETERS)
        return monitor.report()

    warned = report(6.8, 6, 4)
    assert warned["events"]["rise_under_2_samples"] == 6
    assert warned["events"]["rise_reported"] == 4
    assert any(w.startswith("rise times under 2 samples (13.6 ms) cannot be resolved")
               and "reported rise times are likely too long" in w
               for w in warned["warnings"])
    # the text does not grow with every event (serve logs each new text once)
    assert [w for w in warned["warnings"] if "rise times" in w] == [
        w for w in report(6.8, 6, 40)["warnings"] if "rise times" in w]
    assert not any("rise times" in w for w in report(1.5, 6, 4)["warnings"])
    assert not any("rise times" in w for w in report(6.8, 6, 0)["warnings"])


def test_truncated_events_are_counted_and_warned_about_once():
    monitor = QualityMonitor((64,), pixel_um=0.2, dt_ms=1.0)
    monitor.count_event("", measured=honesty.PARAMETERS)
    assert not any("truncated" in w for w in monitor.report()["warnings"])
    for _ in range(3):
        monitor.count_event("truncated", measured=())
    report = monitor.report()
    assert report["events"]["truncated"] == 3
    assert sum("flag 'truncated'" in w for w in report["warnings"]) == 1


def test_weak_events_are_flagged_imprecise_and_counted():
    """Under the model's ``precise_min_significance`` an event keeps its parameters and gets the
    ``imprecise`` flag (counted by the quality report); at or above it, with the rule off, or
    when nothing is left to be imprecise (saturated: all five emptied) it does not."""
    dff0 = _spark()
    mask = dff0 > 0.2

    def flags(sig, threshold, saturated=None):
        instance = _instance(dff0, mask, saturated)
        instance.significance = sig
        fields = {"amplitude_dff0": 0.8, "fwhm_um": 2.0, "fdhm_ms": 25.0, "rise_ms": 9.0,
                  "t50_ms": 15.0}
        honesty.apply(fields, instance, PIXEL_UM, DT_MS, threshold)
        return fields["flags"].split(";"), fields

    weak, fields = flags(9.0, 15.0)
    assert honesty.IMPRECISE_FLAG in weak and fields["fwhm_um"] == 2.0  # kept, flagged
    assert honesty.IMPRECISE_FLAG not in flags(15.0, 15.0)[0]
    assert honesty.IMPRECISE_FLAG not in flags(9.0, None)[0]
    saturated = np.zeros(dff0.shape, bool)
    saturated[mask] = True
    assert flags(9.0, 15.0, saturated)[0] == ["saturated"]
    monitor = QualityMonitor((64,), pixel_um=0.2, dt_ms=1.0)
    monitor.count_event(";".join(weak), measured=honesty.PARAMETERS)
    monitor.count_event("", measured=honesty.PARAMETERS)
    assert monitor.report()["events"]["imprecise"] == 1


def test_significance_against_each_pixels_resting_level_drops_an_offset_column():
    """A column of ΔF/F0 offset by +0.6 at rest (its F0 smoothed from brighter neighbours)
    passes the surroundings test; taken against each pixel's resting level (the analyzer's
    :class:`~engine.noise_map.RestingLevels`) it does not, and a real spark keeps its
    significance."""
    rng = np.random.default_rng(4)
    noise_sd = 0.3
    clean = _spark(amplitude=1.5)
    mask = clean > 0.2 * clean.max()
    offset = np.zeros(clean.shape[1])
    offset[58:63] = 0.6
    column = offset[None] + rng.normal(0, noise_sd, clean.shape)
    spark = clean + rng.normal(0, noise_sd, clean.shape)
    resting = offset - 0.05  # a resting level as estimated: shrunk by a little
    resting[np.abs(resting) < 0.2] = 0.0
    z_column = significance(_instance(column, mask), PIXEL_UM, DT_MS)
    z_column_rest = significance(_instance(column, mask), PIXEL_UM, DT_MS, resting=resting)
    z_spark = significance(_instance(spark, mask), PIXEL_UM, DT_MS)
    z_spark_rest = significance(_instance(spark, mask), PIXEL_UM, DT_MS,
                                resting=np.zeros(clean.shape[1]))
    assert z_column > 2 * DEFAULT_MIN_SIGNIFICANCE  # fooled by the offset
    assert z_column_rest < DEFAULT_MIN_SIGNIFICANCE
    assert z_spark_rest == pytest.approx(z_spark)
    assert z_spark > 2 * DEFAULT_MIN_SIGNIFICANCE


def test_a_crop_whose_pixels_mostly_read_no_noise_is_still_tested():
    """Dark pixels of integer data can read a noise of exactly 0 (their frame differences are
    mostly 0); where they make up most of an event's crop, the noise map's weighting must not
    divide by a zero median and leave the event untested."""
    rng = np.random.default_rng(5)
    clean = _spark(amplitude=1.5)
    dff0 = clean + rng.normal(0, 0.2, clean.shape)
    mask = clean > 0.2 * clean.max()
    noise_map = np.zeros(clean.shape[1])
    noise_map[40:80] = 0.2  # a third of the crop's columns read noise, the rest 0
    z_weighted = significance(_instance(dff0, mask), PIXEL_UM, DT_MS, noise_map=noise_map)
    assert math.isfinite(z_weighted) and z_weighted > DEFAULT_MIN_SIGNIFICANCE
    z_blank = significance(_instance(dff0, mask), PIXEL_UM, DT_MS,
                           noise_map=np.zeros(clean.shape[1]))
    assert z_blank == pytest.approx(significance(_instance(dff0, mask), PIXEL_UM, DT_MS))


def test_too_short_and_still_recordings_are_warned_about():
    """A recording that ends inside the baseline's warm-up takes F0 from its own events'
    frames: warned once it has ended (a live stream is that short only at its start). A file
    whose pixels never change (all zeros, a constant) has no noise at all: warned."""
    rng = np.random.default_rng(2)
    noisy = rng.poisson(200.0, (40, 64)).astype(np.float64)

    def report(frames: np.ndarray, ended: bool) -> dict:
        monitor = QualityMonitor((64,), pixel_um=0.2, dt_ms=1.5, baseline_warmup_ms=396.0)
        monitor.observe(0, frames)
        monitor.ended = ended
        return monitor.report()

    short = report(noisy, ended=True)
    assert short["recorded_ms"] == pytest.approx(60.0)
    assert any(w.startswith("the recording lasts 60 ms, less than the baseline's 396-ms")
               for w in short["warnings"])
    assert not any("warm-up" in w for w in report(noisy, ended=False)["warnings"])
    long = report(rng.poisson(200.0, (400, 64)).astype(np.float64), ended=True)
    assert not any("warm-up" in w or "no pixel changes" in w for w in long["warnings"])
    still = report(np.full((400, 64), 7.0), ended=True)
    assert still["still_pixels"] and any(w.startswith("no pixel changes over time")
                                         for w in still["warnings"])
    assert not short["still_pixels"]


def test_fast_bleaching_is_warned_about_and_slow_is_not():
    """The baseline lags a bleaching cell by about half a second: 30 % over 3 s (10 % per s)
    is warned about with its rate, the same 30 % over 30 s (1 % per s) is not."""
    def report(n_frames: int, dt_ms: float) -> dict:
        monitor = QualityMonitor((32,), pixel_um=0.2, dt_ms=dt_ms)
        rng = np.random.default_rng(0)
        for first in range(0, n_frames, 100):
            level = 400.0 * (1 - 0.3 * first / n_frames)
            frames = rng.poisson(level, (100, 32)).astype(np.float64)
            monitor.observe(first, frames)
            monitor.observe_baseline(np.full(32, level))
        return monitor.report()

    fast = report(2000, 1.5)
    assert any(w.startswith("the cell bleaches by 9 % per s") and "0.05 low" in w
               for w in fast["warnings"]), fast["warnings"]
    assert not any("per s" in w for w in report(2000, 15.0)["warnings"])
