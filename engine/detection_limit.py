"""The faintest spark a recording lets through the significance test: its detection limit.

A candidate event is reported only where its significance (:mod:`engine.significance`: the
largest box mean of ΔF/F0 in its mask, over the noise of such box means) reaches the model's
``min_significance`` z. Under white noise of SD σ = 1 / SNR per sample (SNR: the quality
report's resting SNR, the median over the cell of F0 over each pixel's temporal noise), a box
of n samples has noise σ / √n, and a spark of peak ΔF/F0 A fills the box around its peak to
A × f, f being the box mean of the spark's shape normalized to its peak. A spark therefore
reaches z only from

    A_limit = z / (SNR × √n × f)

on. f is that of a typical spark of ventricular myocytes (FWHM :data:`SPARK_FWHM_UM`, FDHM
:data:`SPARK_FDHM_MS`; Cheng & Lederer 2008, Physiol Rev 88:1491, table 1), Gaussian in space
and in time (the box, about 1 µm × 20 ms, sits on the peak, where neither tail weighs much).

It is an estimate for one shape under white noise: a spark at half the limit does not pass;
between half the limit and the limit some do (sparks wider or longer than the typical one,
noise that adds to a faint one; the significance is a maximum over the event's mask); a
brighter one can still be missed (the detectors' own criteria; noise that is not white: laser
flicker and fixed-pattern noise raise the box noise; the resting SNR is a median over the
cell). On development validation recordings it separates what is found from what is not
(``castream evaluate`` prints recall by peak ΔF/F0 over the limit; docs/RESULTS.md, "The
detection limit in the quality report": under half the limit 6 % of line-scan and 11 % of
movie sparks were found, from the limit on 93-97 % and 86-91 %). The quality report gives it as ``detection_limit_dff0`` and warns where it exceeds
:data:`LIMIT_WARNING_DFF0`: the spark counts and frequencies of such a recording are lower
bounds.
"""

from __future__ import annotations

import math

import numpy as np

from .significance import box_size

#: the typical spark whose box mean sets the limit (Cheng & Lederer 2008: FWHM ~2 µm, FDHM
#: ~20-40 ms in ventricular myocytes)
SPARK_FWHM_UM = 2.0
SPARK_FDHM_MS = 25.0
#: the quality report warns above this limit: a typical spark has ΔF/F0 ~0.5-2 (fluo-3/4)
LIMIT_WARNING_DFF0 = 0.5


def box_fraction(fwhm: float, n: int, step: float) -> float:
    """Mean of ``n`` samples ``step`` apart, centred on the peak of a Gaussian of full width
    ``fwhm`` at half maximum, as a fraction of its peak (same units for ``fwhm`` and ``step``)."""
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    offsets = (np.arange(n) - (n - 1) / 2.0) * step
    return float(np.mean(np.exp(-0.5 * (offsets / sigma) ** 2)))


def detection_limit_dff0(resting_snr: float, pixel_um: float, dt_ms: float, linescan: bool,
                         min_significance: float) -> float:
    """The peak ΔF/F0 under which a typical spark cannot reach ``min_significance`` (module
    docstring); NaN where the SNR or the threshold is not known."""
    if not (math.isfinite(resting_snr) and resting_snr > 0 and math.isfinite(min_significance)):
        return math.nan
    frames, rows, cols = box_size(pixel_um, dt_ms, linescan)
    fill = (box_fraction(SPARK_FDHM_MS, frames, dt_ms)
            * box_fraction(SPARK_FWHM_UM, cols, pixel_um)
            * box_fraction(SPARK_FWHM_UM, rows, pixel_um))
    return min_significance / (resting_snr * math.sqrt(frames * rows * cols) * fill)
