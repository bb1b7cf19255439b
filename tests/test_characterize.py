"""Characterization: exact on noise-free sparks, small median error and bias on noisy ones, also
on spark shapes the simulator does not make (tests/shapes_independent.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import independent_shapes as shapes
import numpy as np
import pytest
from scipy import ndimage

from engine.characterize import (
    CharacterizeConfig,
    characterize,
    spark_frequency_per_100um_s,
    to_event,
)
from engine.instances import Instance, frames_of
from engine.timecourse import measure

DT_MS, PX_UM = 1.5, 0.14
LINESCAN_MODEL = Path(__file__).resolve().parents[1] / "engine/models/default/linescan-accurate"
EXACT = CharacterizeConfig(sigma_ms=0.0, sigma_um=0.0, band_ms=0.0, band_um=0.0,
                           profile_sigma_ms=0.0, hold_ms=0.0)


def spark_profile(t_ms, release_ms, tau_ms):
    """Smooth rise (1 - exp) during release, then exponential decay; peak 1 at release_ms."""
    rise = -np.expm1(-np.clip(t_ms, 0, release_ms) / (release_ms / 2)) / -math.expm1(-2.0)
    decay = np.exp(-np.clip(t_ms - release_ms, 0, None) / tau_ms)
    return np.where(t_ms < 0, 0.0, np.where(t_ms <= release_ms, rise, decay))


def render(n_t, n_x, t0_ms, x_um, amp, fwhm_um, release_ms, tau_ms):
    t = np.arange(n_t)[:, None] * DT_MS - t0_ms
    x = np.arange(n_x)[None, :] * PX_UM
    space = np.exp(-0.5 * ((x - x_um) / (fwhm_um / 2.3548)) ** 2)
    return (amp * spark_profile(t, release_ms, tau_ms) * space).astype(np.float32)


def instance_of(dff0, clean, threshold=0.15):
    mask = clean > threshold * clean.max()
    sl = ndimage.find_objects(mask.astype(np.int32))[0]
    return Instance("spark", 0.9, mask[sl][:, None, :], (sl[0].start, 0, sl[1].start),
                    dff0[:, None, :], (0, 0, 0), "TX", event_id=7)


def test_crossings_interpolate_linearly():
    profile = np.array([0.0, 0.2, 0.6, 1.0, 0.8, 0.4, 0.0])
    measured = measure(profile, 0.0)
    assert measured.peak == 3 and measured.amplitude == pytest.approx(1.0)
    assert measured.before(0.5) == pytest.approx(1.75)
    assert measured.after(0.5) == pytest.approx(4.75)
    assert math.isnan(measured.after(-1.0))


def test_noise_free_spark_is_exact():
    # peak exactly on a grid point: t0 + release = 60 ms (line 40), x = 7.0 um (px 50)
    clean = render(200, 100, 48.0, 7.0, 0.8, 2.0, 12.0, 20.0)
    fields = characterize(instance_of(clean, clean), PX_UM, DT_MS, EXACT)
    fine_t = np.arange(0, 300, 0.001)
    profile = spark_profile(fine_t - 48.0, 12.0, 20.0)
    above = fine_t[profile >= 0.5]
    onset = fine_t[np.argmax(profile >= 0.1)]
    assert fields["amplitude_dff0"] == pytest.approx(0.8, rel=1e-5)
    assert fields["t_peak_ms"] == pytest.approx(60.0) and fields["x_um"] == pytest.approx(7.0)
    assert math.isnan(fields["y_um"])
    assert fields["fwhm_um"] == pytest.approx(2.0, rel=1e-3)
    assert fields["fdhm_ms"] == pytest.approx(above[-1] - above[0], rel=0.02)
    assert fields["rise_ms"] == pytest.approx(60.0 - onset, rel=0.05)
    assert fields["t50_ms"] == pytest.approx(20.0 * math.log(2), rel=0.02)
    default = characterize(instance_of(clean, clean), PX_UM, DT_MS)
    for key in ("amplitude_dff0", "fwhm_um", "fdhm_ms"):
        assert default[key] == pytest.approx(fields[key], rel=0.12), key


def test_noisy_sparks_median_error_within_15_percent():
    rng = np.random.default_rng(3)
    errors = {"amplitude_dff0": [], "fwhm_um": [], "fdhm_ms": []}
    for _ in range(40):
        amp, fwhm = rng.uniform(0.3, 1.5), rng.uniform(1.5, 2.5)
        release, tau = rng.uniform(6, 12), rng.uniform(15, 30)
        clean = render(160, 120, 40.0, 8.4, amp, fwhm, release, tau)
        resting_photons = rng.uniform(10, 40)
        noisy = rng.poisson(resting_photons * (1 + clean)) / resting_photons - 1
        truth = characterize(instance_of(clean, clean), PX_UM, DT_MS, EXACT)
        got = characterize(instance_of(noisy.astype(np.float32), clean), PX_UM, DT_MS)
        for key, values in errors.items():
            values.append(abs(got[key] - truth[key]) / truth[key])
    for key, values in errors.items():
        assert np.nanmedian(values) <= 0.15, (key, np.nanmedian(values))


def test_to_event_and_movie_positions():
    clean = render(100, 60, 20.0, 4.2, 1.0, 2.0, 8.0, 15.0)
    movie = np.repeat(clean[:, None, :], 5, axis=1) * np.array([0.2, 0.6, 1, 0.6, 0.2])[:, None]
    mask = movie > 0.2
    inst = Instance("spark", 0.8, mask, (10, 3, 5), movie.astype(np.float32), (10, 3, 5), "TYX", 4)
    event = to_event(inst, PX_UM, DT_MS, stream="s1", cell="c1")
    assert event.event_id == 4 and event.stream == "s1"
    assert event.y_um == pytest.approx((3 + 2) * PX_UM)
    assert event.x_um == pytest.approx((5 + 30) * PX_UM)
    assert event.t_peak_ms == pytest.approx((10 + 18) * DT_MS, abs=DT_MS)


def test_spark_frequency():
    assert spark_frequency_per_100um_s(30, 50.0, 3.0) == pytest.approx(20.0)
    assert math.isnan(spark_frequency_per_100um_s(3, 0.0, 1.0))


@pytest.mark.slow
def test_against_simulator_ground_truth():
    """Simulated line-scans (4 × 4 s) with the truth masks, sparks with SNR ≥ 1.5 (amplitude
    over the per-pixel noise SD, the range the method is built for: below it the half-maximum
    crossings are mostly noise), measured as the engine measures them: its ΔF/F0
    (:func:`engine.preprocess.preprocess_recording`), the context crop its tracker cuts around
    an event, and the packaged line-scan model's characterization parameters. The crop
    matters: with the whole recording as context (this test until 2026-12-07) the per-column
    baselines see the cell's bleaching-lag pattern across all 512 columns and the FWHM error
    read 27 %. Measured (32 sparks): ΔF/F0 9.0 %, FWHM 10.2 %, FDHM 16.1 %; FDHM is allowed
    20 % at these SNRs (1.5–6); through the engine (detected sparks, ``castream evaluate ...
    sim:linescan:12``) it is about 10 %."""
    from acquisition import simulate
    from engine.models.postprocess_file import PostprocessParams
    from engine.preprocess import preprocess_recording

    shipped = PostprocessParams.load(LINESCAN_MODEL)
    errors = {"amplitude_dff0": [], "fwhm_um": [], "fdhm_ms": []}
    for seed in (0, 1, 2, 3):
        rec = simulate.simulate_linescan(simulate.LinescanParams(duration_s=4.0), seed=seed)
        dff0 = preprocess_recording(rec.data, rec.dt_ms, blank=rec.blank)
        counts = rec.data.astype(np.float32) - rec.blank
        f0 = ndimage.gaussian_filter(ndimage.percentile_filter(counts, 50, (301, 1)), (0, 2))
        flat = counts / np.maximum(f0, 1e-3) - 1
        bright = f0.mean(axis=0) > np.median(f0.mean(axis=0))
        noise = 1.4826 * np.median(np.abs(np.diff(flat[:, bright], axis=0))) / math.sqrt(2)
        before = frames_of(shipped.tracker.context_before_ms, rec.dt_ms)
        after = frames_of(shipped.tracker.context_after_ms, rec.dt_ms)
        margin = math.ceil(shipped.tracker.context_margin_um / rec.pixel_um)
        for ev in rec.events:
            if ev["kind"] != "spark" or ev["amplitude_dff0"] < 1.5 * noise:
                continue
            mask = rec.instance_mask == ev["event_id"]
            sl = ndimage.find_objects(mask.astype(np.int32))[0]
            t0, t1 = max(0, sl[0].start - before), min(len(dff0), sl[0].stop + after)
            x0, x1 = max(0, sl[1].start - margin), min(dff0.shape[1], sl[1].stop + margin)
            inst = Instance("spark", 1.0, mask[sl][:, None, :], (sl[0].start, 0, sl[1].start),
                            dff0[t0:t1, None, x0:x1], (t0, 0, x0), "TX")
            got = characterize(inst, rec.pixel_um, rec.dt_ms, shipped.characterize)
            for key, values in errors.items():
                values.append(abs(got[key] - ev[key]) / ev[key])
    assert len(errors["fwhm_um"]) >= 30
    for key, values in errors.items():
        limit = 0.2 if key == "fdhm_ms" else 0.15
        assert np.nanmedian(values) <= limit, (key, np.nanmedian(values))


def movie_spark(rng, amp, fwhm_um, noise_sd, dt_ms=6.8, px_um=0.2):
    """A Gaussian spark in a (T, Y, X) movie at Dotti et al.'s sampling, plus white noise."""
    t = np.arange(40)[:, None, None] * dt_ms - 60.0
    y = np.arange(32)[None, :, None] * px_um - 3.1
    x = np.arange(48)[None, None, :] * px_um - 4.7
    sigma = fwhm_um / 2.3548
    clean = amp * spark_profile(t, 9.0, 30.0) * np.exp(-0.5 * (x**2 + y**2) / sigma**2)
    dff0 = clean + rng.normal(0.0, noise_sd, clean.shape)
    mask = clean > 0.2 * clean.max()
    sl = ndimage.find_objects(mask.astype(np.int32))[0]
    origin = tuple(s.start for s in sl)
    return Instance("spark", 0.9, mask[sl], origin, dff0.astype(np.float32), (0, 0, 0), "TYX"), clean


def test_movie_sparks_amplitude_and_width_through_the_noise():
    """At 6.8 ms/frame and 0.2 µm pixels, a spark of ΔF/F0 0.5 under per-pixel noise SD 0.33
    (about 10 photons, as in the simulated movies): amplitude and FWHM come from a fit to a
    row-averaged profile, not from one smoothed pixel's row (the line-scan recipe, which gives
    median errors of 20 % and 45 % here): median errors ≤ 18 % and ≤ 25 %."""
    rng = np.random.default_rng(3)
    amp_err, fwhm_err = [], []
    for _ in range(40):
        inst, clean = movie_spark(rng, amp=0.5, fwhm_um=1.9, noise_sd=0.33)
        fields = characterize(inst, 0.2, 6.8)
        amp_err.append(abs(fields["amplitude_dff0"] / clean.max() - 1))
        fwhm_err.append(abs(fields["fwhm_um"] / 1.9 - 1))
    assert np.nanmedian(amp_err) <= 0.18, np.nanmedian(amp_err)
    assert np.nanmedian(fwhm_err) <= 0.25, np.nanmedian(fwhm_err)
    inst, clean = movie_spark(rng, amp=0.8, fwhm_um=1.9, noise_sd=0.0)
    fields = characterize(inst, 0.2, 6.8)
    assert fields["amplitude_dff0"] == pytest.approx(clean.max(), rel=0.05)
    assert fields["fwhm_um"] == pytest.approx(1.9, rel=0.05)


def test_fixed_spatial_pattern_does_not_bend_the_width():
    """ΔF/F0 whose F0 was smoothed in space keeps the resting pattern (striations every 1.8 µm,
    ±10 %) as a fixed multiplicative pattern. At high SNR it bent the spatial profile: FWHM
    −33 % on the training simulator's movies at 1,000 photons per pixel (docs/RESULTS.md).
    Each column's own baseline before the event (shrunk by empirical Bayes) removes it."""
    t = np.arange(40)[:, None, None] * 6.8 - 60.0
    y = np.arange(32)[None, :, None] * 0.2 - 3.1
    x = np.arange(48)[None, None, :] * 0.2 - 4.7
    sigma = 1.9 / 2.3548
    clean = 0.4 * spark_profile(t, 9.0, 30.0) * np.exp(-0.5 * (x**2 + y**2) / sigma**2)
    pattern = 0.1 * np.cos(2 * np.pi * (np.arange(48) - 23.5) / 9.0)[None, None, :]
    dff0 = (1 + clean) * (1 + pattern) - 1 + np.random.default_rng(8).normal(0, 0.01, clean.shape)
    mask = clean > 0.2 * clean.max()
    sl = ndimage.find_objects(mask.astype(np.int32))[0]
    inst = Instance("spark", 0.9, mask[sl], tuple(s.start for s in sl), dff0.astype(np.float32),
                    (0, 0, 0), "TYX")
    fields = characterize(inst, 0.2, 6.8)
    assert fields["fwhm_um"] == pytest.approx(1.9, rel=0.08)
    # the pattern also scales the spark's ΔF/F0 by up to ±10 % (an F0 error, not measurable)
    assert fields["amplitude_dff0"] == pytest.approx(0.4, rel=0.1)
    without = characterize(inst, 0.2, 6.8, CharacterizeConfig(column_baseline_gap_ms=None))
    assert abs(without["fwhm_um"] / 1.9 - 1) > 0.15  # the pattern matters without it


def _errors(cases):
    """Relative errors (estimate / truth − 1) per parameter over ``cases``."""
    keys = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")
    errors = {key: [] for key in keys}
    for inst, px, dt, truth, _ in cases:
        got = characterize(inst, px, dt)
        for key in keys:
            assert not got[key] <= 0, (key, got[key])  # NaN or positive, never garbage
            errors[key].append(got[key] / truth[key] - 1)
    return {key: np.array(values) for key, values in errors.items()}


@pytest.mark.parametrize("movie", [False, True], ids=["linescan", "movie"])
def test_sparks_the_simulator_does_not_make(movie):
    """Reaction-diffusion sparks through a PSF (in and out of focus) and biexponential sparks
    with Moffat profiles (tests/independent_shapes.py), pixel 0.08–0.3 µm, 0.5–3 ms/line or
    3–20 ms/frame, SNR 1.5–10 (36 events each): small median error and bias. Measured: line-scans
    ΔF/F0 5.3 %, FWHM 7.2 %, FDHM 9.8 %, rise 22 % (bias +9 %), t50 19 % (bias +1 %); movies
    8.0, 11.3, 7.7, 11.4, 14.5 %. The release-curve fit used before had t50 errors of 20 % with
    biases of −18 % (line-scans) and −19 % (movies) on these very events."""
    rng = np.random.default_rng(11 + movie)
    cases = [shapes.case(family, rng, movie) for family in ("diffusion", "out_of_focus", "alpha")
             for _ in range(12)]
    errors = _errors(cases)
    limits = {"amplitude_dff0": (0.12, 0.08), "fwhm_um": (0.15, 0.08), "fdhm_ms": (0.15, 0.08),
              "rise_ms": (0.3, 0.2), "t50_ms": (0.2, 0.08)}  # (median |error|, |median bias|)
    for key, (error, bias) in limits.items():
        assert np.nanmedian(np.abs(errors[key])) <= error, (key, np.nanmedian(np.abs(errors[key])))
        assert abs(np.nanmedian(errors[key])) <= bias, (key, np.nanmedian(errors[key]))


def test_embers_keep_their_duration():
    """Long low plateaus (50–300 ms): FDHM and t50 follow the plateau (measured 1.8 % and 10 %;
    the release-curve fit read t50 off an exponential: −67 %)."""
    rng = np.random.default_rng(5)
    errors = _errors([shapes.case("ember", rng, False) for _ in range(8)])
    assert np.nanmedian(np.abs(errors["fdhm_ms"])) <= 0.05
    assert np.nanmedian(np.abs(errors["t50_ms"])) <= 0.25


def test_crossing_outside_the_data_is_nan():
    """A crop that ends before the decay reaches 50 % has no t50 nor FDHM; one that starts
    after the 10 % crossing has no rise; the other parameters stay."""
    clean = render(200, 100, 48.0, 7.0, 0.8, 2.0, 12.0, 60.0)
    early = clean[:50]  # peak at line 40, 50 % of a 60 ms decay ≈ line 68
    fields = characterize(instance_of(early, early), PX_UM, DT_MS)
    assert math.isnan(fields["t50_ms"]) and math.isnan(fields["fdhm_ms"])
    assert fields["rise_ms"] > 0 and fields["fwhm_um"] == pytest.approx(2.0, rel=0.05)
    late = clean[36:]  # starts 6 ms before the peak, above 10 %
    inst = instance_of(late, late)
    fields = characterize(inst, PX_UM, DT_MS)
    assert math.isnan(fields["rise_ms"])
    assert fields["t50_ms"] == pytest.approx(60.0 * math.log(2), rel=0.05)


def test_noise_only_gives_no_garbage():
    """Pure noise under a mask: every parameter NaN or positive, rise never negative."""
    rng = np.random.default_rng(0)
    for _ in range(10):
        noise = rng.normal(0.0, 0.3, (80, 1, 60)).astype(np.float32)
        mask = np.zeros((20, 1, 12), bool)
        mask[5:15, :, 3:9] = True
        inst = Instance("spark", 0.5, mask, (30, 0, 24), noise, (0, 0, 0), "TX")
        fields = characterize(inst, PX_UM, DT_MS)
        for key in ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms"):
            assert not fields[key] <= 0, (key, fields[key])


def test_speed_per_event():
    """Characterization runs per event in the streaming path: a few ms at most, no open-ended
    fitting (2 ms measured on an idle 2-core machine; the limit leaves room for a busy one)."""
    rng = np.random.default_rng(2)
    cases = [shapes.case("diffusion", rng, False) for _ in range(5)]
    start = time.process_time()
    for _ in range(4):
        for inst, px, dt, *_ in cases:
            characterize(inst, px, dt)
    assert (time.process_time() - start) / 20 < 0.025


def test_column_noise_sds_are_noise_sd_of_each_column():
    from engine.timecourse import noise_sd, noise_sds

    rng = np.random.default_rng(4)
    for shape in [(3, 5), (5, 1), (40, 17), (12, 30)]:
        slab = rng.normal(size=shape) * rng.uniform(0.1, 2.0, shape[1])
        np.testing.assert_allclose(noise_sds(slab),
                                   [noise_sd(column) for column in slab.T], rtol=1e-12)


def test_a_level_left_under_the_spatial_profile_is_taken_off_the_width():
    """A broad low component with the spark's time course (a neighbour's tail, an F0 that is
    slightly off: 12 % of the peak, FWHM 20 µm) raises the level under the spark's spatial
    profile; the pseudo-Voigt, which has no constant term, widens to cover it (+6 % here).
    With ``fwhm_level_widths`` the width is fitted to the profile less its level, read 2.5
    first-fit FWHMs from the peak; amplitude and timing keep the first fit."""
    n_t, n_x = 200, 200
    spark = render(n_t, n_x, 60.0, 14.0, 1.0, 1.9, 8.0, 25.0)
    t = np.arange(n_t)[:, None] * DT_MS - 60.0
    x = np.arange(n_x)[None, :] * PX_UM
    broad = 0.12 * spark_profile(t, 8.0, 25.0) * np.exp(-0.5 * ((x - 14.0) / (20 / 2.3548)) ** 2)
    plain, levelled = [], []
    for seed in range(3):
        noise = np.random.default_rng(seed).normal(0, 0.03, spark.shape)
        inst = instance_of((spark + broad + noise).astype(np.float32), spark)
        first = characterize(inst, PX_UM, DT_MS, CharacterizeConfig())
        second = characterize(inst, PX_UM, DT_MS, CharacterizeConfig(fwhm_level_widths=2.5))
        plain.append(first["fwhm_um"])
        levelled.append(second["fwhm_um"])
        for key in ("amplitude_dff0", "fdhm_ms", "rise_ms", "t50_ms", "t_peak_ms"):
            assert second[key] == first[key]
    assert np.mean(plain) / 1.9 - 1 > 0.04
    assert np.mean(levelled) == pytest.approx(1.9, rel=0.03)
