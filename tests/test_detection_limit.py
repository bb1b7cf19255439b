"""The detection limit of the quality report (engine/detection_limit.py): a typical spark twice
as bright passes the engine's own significance test, one half as bright does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.detection_limit import (
    LIMIT_WARNING_DFF0,
    SPARK_FDHM_MS,
    SPARK_FWHM_UM,
    box_fraction,
    detection_limit_dff0,
)
from engine.instances import Instance
from engine.quality import QualityMonitor
from engine.significance import significance

SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # Gaussian SD per unit FWHM


def test_box_fraction_of_a_gaussian() -> None:
    assert box_fraction(2.0, 1, 0.3) == 1.0  # one sample on the peak
    # three samples one half-width apart: the peak and two at half maximum
    assert box_fraction(2.0, 3, 1.0) == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    wider = [box_fraction(2.0, n, 0.2) for n in (1, 3, 5, 9, 15)]
    assert wider == sorted(wider, reverse=True)


def _spark_crop(amplitude: float, snr: float, pixel_um: float, dt_ms: float, movie: bool,
                rng: np.random.Generator) -> Instance:
    """A typical spark (Gaussian, FWHM 2 µm, FDHM 25 ms) in white noise of SD 1 / ``snr``."""
    t = (np.arange(int(round(300 / dt_ms))) - int(round(150 / dt_ms)))[:, None, None] * dt_ms
    half = int(round(4.0 / pixel_um))
    x = (np.arange(2 * half + 1) - half)[None, None, :] * pixel_um
    y = x.reshape(1, -1, 1) if movie else np.zeros((1, 1, 1))
    shape = (np.exp(-0.5 * (t / (SIGMA * SPARK_FDHM_MS)) ** 2)
             * np.exp(-0.5 * (x**2 + y**2) / (SIGMA * SPARK_FWHM_UM) ** 2))
    dff0 = amplitude * shape + rng.normal(0.0, 1.0 / snr, shape.shape)
    mask = shape > 0.2
    frames = np.flatnonzero(mask.any(axis=(1, 2)))
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    crop = mask[frames[0]:frames[-1] + 1, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Instance("spark", 1.0, crop, (int(frames[0]), int(rows[0]), int(cols[0])),
                    dff0.astype(np.float32), (0, 0, 0), "TYX" if movie else "TX")


@pytest.mark.parametrize(("snr", "pixel_um", "dt_ms", "movie"), [
    (1.5, 0.26, 14.0, True), (4.0, 0.2, 3.5, True), (1.2, 0.15, 1.5, False),
    (3.0, 0.1, 0.8, False)])
def test_a_spark_twice_the_limit_passes_and_half_of_it_does_not(snr, pixel_um, dt_ms,
                                                                movie) -> None:
    """With the engine's significance on white noise (the limit's own assumption), over 12
    seeded recordings: at twice the limit every spark passes, at half of it none does."""
    z_min = 7.0
    limit = detection_limit_dff0(snr, pixel_um, dt_ms, not movie, z_min)
    rng = np.random.default_rng(11)
    passed = {factor: sum(significance(_spark_crop(factor * limit, snr, pixel_um, dt_ms, movie,
                                                   rng), pixel_um, dt_ms) >= z_min
                          for _ in range(12))
              for factor in (0.5, 2.0)}
    assert passed == {0.5: 0, 2.0: 12}


def test_the_limit_falls_with_the_snr_and_is_unknown_without_one() -> None:
    limits = [detection_limit_dff0(snr, 0.2, 6.8, False, 7.0) for snr in (1.0, 2.0, 8.0)]
    assert limits[0] == pytest.approx(2 * limits[1]) and limits[1] == pytest.approx(4 * limits[2])
    assert math.isnan(detection_limit_dff0(math.nan, 0.2, 6.8, False, 7.0))
    assert math.isnan(detection_limit_dff0(2.0, 0.2, 6.8, False, math.nan))


@pytest.mark.parametrize(("photons", "warned"), [(1.0, True), (400.0, False)])
def test_the_quality_report_gives_the_limit_and_warns_when_it_is_high(photons, warned) -> None:
    rng = np.random.default_rng(3)
    n, x = 600, 128
    frames = rng.poisson(np.full((n, x), photons)) + 100.0
    monitor = QualityMonitor((x,), pixel_um=0.2, dt_ms=1.5, min_significance=6.0)
    for first in range(0, n, 100):
        monitor.observe(first, frames[first:first + 100])
        monitor.observe_baseline(np.mean(frames[first:first + 100], axis=0) - 100.0)
    report = monitor.report()
    expected = detection_limit_dff0(report["resting_snr"], 0.2, 1.5, True, 6.0)
    assert report["detection_limit_dff0"] == pytest.approx(expected)
    assert (report["detection_limit_dff0"] > LIMIT_WARNING_DFF0) is warned
    assert any("is likely missed" in w for w in report["warnings"]) is warned


def test_the_overview_title_gives_the_limit_when_there_is_one() -> None:
    from pathlib import Path

    from engine.analyze_file import _overview_title

    def title(limit) -> str:
        events = {"min_significance": 7.0, "rejected_not_significant": 5}
        quality = {"events": events, "resting_snr": 1.9, "saturated_fraction": 0.0,
                   "detection_limit_dff0": limit}
        return _overview_title(Path("m.tif"), {"quality": quality, "n_events": 3,
                                               "label": "undecided", "confidence": 0.5})

    assert "resting SNR 1.9 · detection limit ΔF/F0 0.55 · saturated" in title(0.5454)
    assert "detection limit" not in title(math.nan) and "detection limit" not in title(None)
