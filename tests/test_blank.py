"""The offset (blank) of a recording nobody gave it: its dark pixels where it has them, else
the photon transfer of its noise (engine.blank), and the quality report saying which."""

from __future__ import annotations

import numpy as np
import pytest

import engine.blank
from engine.blank import (
    DARK_PIXELS,
    DARKEST_PIXELS,
    PHOTON_TRANSFER,
    blank_warning,
    estimate_blank,
    photon_transfer,
)
from engine.quality import QualityMonitor

OFFSET = 400.0
GAIN = 3.0  # counts per photon
READ = 0.5  # read noise, photons


def _counts(resting_photons: np.ndarray, n_lines: int = 600, flicker_sd: float = 0.03,
            seed: int = 0, column_offset_sd: float = 0.0) -> np.ndarray:
    """A line-scan's uint16 counts: offset + column offset + gain · Poisson(photons · flicker)
    + read noise."""
    rng = np.random.default_rng(seed)
    flicker = 1.0 + flicker_sd * rng.standard_normal((n_lines, 1))
    photons = rng.poisson(resting_photons[None, :] * flicker)
    counts = OFFSET + GAIN * photons + GAIN * READ * rng.standard_normal(photons.shape)
    counts += column_offset_sd * rng.standard_normal(resting_photons.shape)[None, :]
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _banded_cell(n_px: int = 512, photons: float = 12.0) -> np.ndarray:
    """A cell across the whole line (no extracellular pixel): bands and a dimmer nucleus."""
    x = np.arange(n_px)
    bands = 1.0 + 0.35 * np.sin(2 * np.pi * x / 60.0)
    nucleus = np.where((x > 200) & (x < 300), 0.6, 1.0)
    return photons * bands * nucleus


def test_a_line_inside_the_cell_gets_its_offset_from_the_photon_transfer():
    data = _counts(_banded_cell())
    estimate = estimate_blank(data)
    signal = GAIN * float(np.median(_banded_cell()))
    assert estimate.source == PHOTON_TRANSFER
    assert estimate.counts == pytest.approx(OFFSET, abs=0.1 * signal)
    # the darkest pixels are cell: taking them would cut F0 by more than a third
    assert estimate.dark_counts - OFFSET > 0.35 * signal
    transfer = photon_transfer(data)
    assert transfer.gain == pytest.approx(GAIN, rel=0.2)


def test_the_laser_flicker_is_not_taken_for_shot_noise():
    """5 % line-to-line flicker adds variance growing with the square of the signal: without
    dividing it out the line bends and its blank moves away."""
    data = _counts(_banded_cell(photons=60.0), flicker_sd=0.05, seed=2)
    signal = GAIN * 60.0
    assert photon_transfer(data).blank == pytest.approx(OFFSET, abs=0.04 * signal)


def test_extracellular_pixels_give_the_offset_where_the_field_has_them():
    resting = _banded_cell()
    resting[:60] = 0.0  # outside the cell: offset and read noise only
    estimate = estimate_blank(_counts(resting))
    assert estimate.source == DARK_PIXELS
    assert estimate.counts == pytest.approx(OFFSET, abs=1.0)
    assert blank_warning({"counts": estimate.counts, "source": estimate.source}) is None


def test_a_uniform_cell_without_dark_pixels_is_warned_about():
    """No spread in brightness: the photon transfer has no line to fit, and the darkest pixels
    (cell) are all that is left; the report says ΔF/F0 may be inflated."""
    data = _counts(np.full(256, 12.0))
    assert photon_transfer(data) is None
    estimate = estimate_blank(data)
    assert estimate.source == DARKEST_PIXELS
    warning = blank_warning({"counts": estimate.counts, "source": estimate.source})
    assert "inflated" in warning and "--blank" in warning


def test_saturated_pixels_stay_out_of_the_photon_transfer():
    resting = _banded_cell()
    resting[440:] = 2000.0  # clipped at the detector's top: no variance left
    data = _counts(resting)
    data = np.minimum(data, 4095).astype(np.uint16)
    signal = GAIN * float(np.median(_banded_cell()))
    assert photon_transfer(data).blank == pytest.approx(OFFSET, abs=0.1 * signal)


def test_the_quality_report_carries_the_blank_and_warns_about_a_guessed_one():
    monitor = QualityMonitor((64,), 0.2, 1.0)
    assert monitor.report()["blank"] is None
    monitor.observe_blank({"counts": 412.0, "source": PHOTON_TRANSFER, "f0_relative_sd": 0.07})
    report = monitor.report()
    assert report["blank"] == {"counts": 412.0, "source": PHOTON_TRANSFER, "f0_relative_sd": 0.07}
    assert any("photon transfer" in w and "±7 %" in w and "--blank" in w for w in report["warnings"])
    monitor.observe_blank({"counts": 400.0, "source": "given", "f0_relative_sd": None})
    assert not any("blank" in w for w in monitor.report()["warnings"])


def test_evaluate_can_leave_the_blank_to_the_engine_as_a_user_without_it_would(monkeypatch):
    """``castream evaluate --blank estimated``: the engine gets no offset and estimates it."""
    import engine.pipeline
    from offline.datasets import LabeledRecording
    from offline.evaluate import run_engine

    given = []
    monkeypatch.setattr(engine.pipeline, "analyze_array",
                        lambda *args, **kwargs: given.append(kwargs["blank"]))
    rec = LabeledRecording(data=np.zeros((8, 16), np.uint16),
                           class_mask=np.zeros((8, 16), np.uint8),
                           instance_mask=np.zeros((8, 16), np.int32), pixel_um=0.2, dt_ms=1.0,
                           axes="TX", events=[], blank=OFFSET)
    run_engine(rec, None, blank="known")
    run_engine(rec, None, blank="estimated")
    assert given == [OFFSET, None]
    with pytest.raises(ValueError, match="blank must be one of"):
        run_engine(rec, None, blank="dark")


def test_the_experiment_reports_f0_too_small_as_a_factor_above_one():
    from offline.experiments.blank_estimate import f0_factor, summary

    # a typical pixel 50 counts above a 100-count offset; a blank of 125 halves F0
    assert f0_factor(150.0, 100.0, 125.0) == pytest.approx(2.0)
    assert f0_factor(150.0, 100.0, 90.0) == pytest.approx(50.0 / 60.0)
    rows = [{"f": 2.0}, {"f": 1.1}, {"f": 0.7}, {"f": 1.0}]
    assert summary(rows, "f")["off"] == pytest.approx(0.5)


def test_extracellular_pixels_are_known_by_their_quiet_noise_not_by_the_darkest_means():
    """Fixed-pattern column offsets spread the extracellular means: their 2nd percentile lies
    well under the offset, their median does not; they are the pixels without shot noise."""
    resting = _banded_cell(photons=3.0)
    resting[:200] = 0.0
    data = _counts(resting, column_offset_sd=3.0, seed=4)
    estimate = estimate_blank(data)
    assert estimate.source == DARK_PIXELS
    assert estimate.counts == pytest.approx(OFFSET, abs=1.0)
    assert estimate.dark_counts < OFFSET - 3.5


def test_neighbours_along_x_keep_fixed_pattern_offsets_from_flattening_the_transfer(monkeypatch):
    data = _counts(_banded_cell(photons=4.0), column_offset_sd=3.0, seed=6)
    signal = GAIN * 4.0
    assert photon_transfer(data).blank == pytest.approx(OFFSET, abs=0.15 * signal)
    monkeypatch.setattr(engine.blank, "TRANSFER_SMOOTH_PX", 1)
    assert photon_transfer(data).blank < OFFSET - 0.15 * signal


def test_the_photon_transfer_says_how_uncertain_it_leaves_f0():
    bright = estimate_blank(_counts(_banded_cell(photons=40.0)))
    dim = estimate_blank(_counts(_banded_cell(photons=2.0), n_lines=200, seed=3))
    assert bright.source == dim.source == PHOTON_TRANSFER
    assert 0 < bright.f0_relative_sd < 0.05
    assert dim.f0_relative_sd > 2 * bright.f0_relative_sd
    assert bright.report() == {"counts": bright.counts, "source": PHOTON_TRANSFER,
                               "f0_relative_sd": bright.f0_relative_sd}


def test_the_overview_title_says_when_the_offset_came_from_the_noise():
    from pathlib import Path

    from engine.analyze_file import _overview_title

    def title(blank) -> str:
        quality = {"events": {"min_significance": 7.0, "rejected_not_significant": 0},
                   "resting_snr": 2.1, "saturated_fraction": 0.0, "blank": blank}
        return _overview_title(Path("ls.tif"), {"quality": quality, "n_events": 66,
                                                "label": "undecided", "confidence": 0.67})

    assert title({"counts": 415.6, "source": PHOTON_TRANSFER}).endswith(
        " · offset 415.6 from the noise")
    assert "offset" not in title({"counts": 400.0, "source": DARK_PIXELS})
    assert "offset" not in title(None)


def test_a_large_movie_is_estimated_on_a_sample_of_its_rows(monkeypatch):
    """Every k-th row, so the warm-up of a large movie costs a bounded number of values."""
    monkeypatch.setattr(engine.blank, "MAX_VALUES", 60_000)
    rng = np.random.default_rng(8)
    resting = np.tile(_banded_cell(n_px=256, photons=12.0), (48, 1))  # (Y, X): no dark pixel
    photons = rng.poisson(resting[None] * (1 + 0.02 * rng.standard_normal((300, 48, 1))))
    frames = np.rint(OFFSET + GAIN * photons + GAIN * READ * rng.standard_normal(photons.shape))
    frames = frames.astype(np.uint16)
    seen = []
    real = engine.blank._sampled
    monkeypatch.setattr(engine.blank, "_sampled", lambda f: seen.append(real(f)) or seen[-1])
    estimate = estimate_blank(frames)
    assert estimate.source == PHOTON_TRANSFER
    assert estimate.counts == pytest.approx(OFFSET, abs=0.1 * GAIN * 12.0)
    assert seen and all(s.size <= 60_000 and s.shape[2] == 256 for s in seen)
