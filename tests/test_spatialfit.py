"""Pseudo-Voigt fit of a spatial profile: exact on its own family, close on other shapes,
stable through the noise."""

from __future__ import annotations

import numpy as np
import pytest

from engine.spatialfit import fit_pseudo_voigt

X = np.arange(80, dtype=np.float64)


def _voigt(centre, fwhm, lorentz_share):
    d2 = (X - centre) ** 2 / fwhm**2
    return (1 - lorentz_share) * np.exp(-4 * np.log(2) * d2) + lorentz_share / (1 + 4 * d2)


@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_noise_free_pseudo_voigt_is_recovered(share):
    profile = 0.7 * _voigt(40.3, 13.0, share)
    fit = fit_pseudo_voigt(profile, 40, 10.0, 25, 1e-3)
    assert fit.fwhm == pytest.approx(13.0, rel=2e-3)
    assert fit.centre == pytest.approx(40.3, abs=0.02)
    assert fit.peak_value == pytest.approx(profile[40], rel=2e-3)
    assert fit.values(X) == pytest.approx(profile, abs=2e-3)


@pytest.mark.parametrize("beta", [1.5, 3.0])
def test_other_shapes_are_close(beta):
    """A Moffat profile (sharper core, heavier tails than a Gaussian) is not in the family:
    its FWHM still comes out within 3 %."""
    a = 13.0 / (2 * np.sqrt(2 ** (1 / beta) - 1))
    profile = (1 + ((X - 40) / a) ** 2) ** (-beta)
    assert fit_pseudo_voigt(profile, 40, 10.0, 25, 1e-3).fwhm == pytest.approx(13.0, rel=0.03)


def test_noisy_gaussian_profiles():
    """SNR 3 per sample: median FWHM error ≤ 12 %, bias ≤ 6 % (measured 10.6 %, −4.4 %; 5.9 %
    and 2.9 % at SNR 5 and 10). The Lorentzian share must earn its keep, so noise does not turn
    a Gaussian into a narrower-cored mix."""
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(100):
        fwhm = rng.uniform(8, 20)
        profile = _voigt(40 + rng.uniform(-0.5, 0.5), fwhm, 0.0) + rng.normal(0, 1 / 3, X.size)
        fit = fit_pseudo_voigt(profile, 40, fwhm * rng.uniform(0.7, 1.4), 30, 1 / 3)
        errors.append(fit.fwhm / fwhm - 1)
    assert np.median(np.abs(errors)) <= 0.12
    assert abs(np.median(errors)) <= 0.06


def test_too_few_samples_or_no_signal():
    assert fit_pseudo_voigt(np.ones(4), 2, 2.0, 3, 0.1) is None
    assert fit_pseudo_voigt(-_voigt(40, 13, 0.0), 40, 13.0, 25, 0.1) is None


def test_the_lorentzian_share_needs_to_pay_its_penalty():
    """A sharp core on broad wings: with the default penalty the fit keeps a Lorentzian share;
    with a penalty larger than anything it can gain it is a pure Gaussian (a model's
    ``characterize.lorentz_penalty`` sets it for the engine)."""
    x = np.arange(100.0)
    profile = (0.8 * np.exp(-4 * np.log(2) * (x - 50) ** 2 / 10.0**2)
               + 0.2 * np.exp(-4 * np.log(2) * (x - 50) ** 2 / 30.0**2))
    mixed = fit_pseudo_voigt(profile, 50, 12.0, 30, 0.01)
    gaussian = fit_pseudo_voigt(profile, 50, 12.0, 30, 0.01, lorentz_penalty=1e12)
    assert mixed.weights[1] > 0
    assert gaussian.weights[1] == 0
    assert gaussian.fwhm > mixed.fwhm  # the Gaussian widens to reach the wings
