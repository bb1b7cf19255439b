"""The release time-course fit recovers FDHM, rise and t50 of known curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.timecourse import fit_time_course, release_curve

DT_MS = 1.5


def _truth(release_ms: float, tau_on_ms: float, tau_decay_ms: float) -> tuple[float, float, float]:
    t = np.arange(0, 400, 0.001)
    y = release_curve(t, 1.0, 0.0, release_ms, tau_on_ms, tau_decay_ms)
    above_half = t[y >= 0.5]
    above_tenth = t[(y >= 0.1) & (t <= release_ms)]
    return (above_half[-1] - above_half[0], release_ms - above_tenth[0],
            tau_decay_ms * math.log(2))


@pytest.mark.parametrize(("release_ms", "tau_on_ms", "tau_decay_ms"),
                         [(9.0, 5.0, 33.0), (15.0, 20.0, 45.0), (6.0, 2.0, 25.0)])
def test_noise_free_curve_is_recovered(release_ms, tau_on_ms, tau_decay_ms):
    t = np.arange(0, 150, DT_MS)
    profile = release_curve(t, 0.8, 30.0, release_ms, tau_on_ms, tau_decay_ms)
    peak = int(np.argmax(profile))
    fitted = fit_time_course(profile, DT_MS, peak, peak - 5, 20.0)
    fdhm, rise, t50 = _truth(release_ms, tau_on_ms, tau_decay_ms)
    assert fitted is not None
    assert fitted.fdhm_ms == pytest.approx(fdhm, rel=0.03)
    assert fitted.rise_ms == pytest.approx(rise, rel=0.05)
    assert fitted.t50_ms == pytest.approx(t50, rel=0.03)


def test_noisy_curves_have_small_median_error():
    rng = np.random.default_rng(3)
    t = np.arange(0, 150, DT_MS)
    errors = []
    for _ in range(40):
        release, tau_on, tau_decay = rng.uniform(6, 14), rng.uniform(3, 10), rng.uniform(25, 45)
        clean = release_curve(t, 0.6, 30.0, release, tau_on, tau_decay)
        noisy = clean + rng.normal(0, 0.08, clean.shape)
        peak = int(np.argmax(clean))
        fitted = fit_time_course(noisy, DT_MS, peak, peak - 6, 25.0)
        assert fitted is not None
        errors.append(abs(fitted.fdhm_ms / _truth(release, tau_on, tau_decay)[0] - 1))
    assert np.median(errors) < 0.1


def test_pure_noise_is_rejected():
    noise = np.random.default_rng(0).normal(0, 0.1, 100)
    assert fit_time_course(noise, DT_MS, 50, 45, 20.0) is None
