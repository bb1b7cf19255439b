"""A stress option: single sparks that carry the noise of the recording they were cut from.

A benchmark built from *recorded* spark shapes (cut out of real line-scans, scaled and placed
on a new background) carries each recording's noise inside the spark: the shape is lumpy, and
the lumps grow with the spark's scale. This generator's sparks are smooth (the noise-free
physics), so a rule that cuts sparks at lumps (a pair split, :mod:`engine.pair_split`) could
be chosen here and fail there. With ``template_noise_sd`` > 0 (off by default: the
development set is unchanged), each *single* spark (in, mid or out of focus; not pairs,
repeats, embers, macro-sparks, puffs or waves) adds to the signal, inside its own support
(where its noise-free ΔF/F0 is ≥ :data:`SUPPORT_FRACTION` of its peak, tapered there),
Gaussian noise with an SD of ``template_noise_sd`` × its peak (a range: one draw per spark)
smoothed over ``template_noise_px`` samples and pixels (a recorded shape resampled to a finer
grid). The truth (masks, the events' parameters, ``clean_dff0``) stays the noise-free
spark's: the lumps are the recording's, not the release's.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from offline.devsim.params import DevParams, draw
from offline.devsim.render import Contribution

SINGLE_SUBTYPES = ("in_focus", "mid_focus", "out_of_focus")
SUPPORT_FRACTION = 0.05
#: a separate random stream, so the rest of a recording is drawn exactly as without the option
STREAM = 0x7E3


def with_template_noise(clean: np.ndarray, contributions: list[Contribution],
                        params: DevParams, seed: int) -> np.ndarray:
    """``clean`` (not changed) plus the template noise of every single spark; ``clean`` itself
    when the option is off."""
    low, high = params.template_noise_sd
    if high <= 0:
        return clean
    rng = np.random.default_rng([seed, STREAM])
    signal = clean.copy()
    for c in contributions:
        if c.kind != "spark" or c.subtype not in SINGLE_SUBTYPES or c.peak_dff0 <= 0:
            continue
        sd = draw(rng, (low, high), log=False) * c.peak_dff0
        lumps = ndimage.gaussian_filter(rng.standard_normal(c.values.shape),
                                        params.template_noise_px)
        lumps /= max(float(lumps.std()), 1e-9)
        taper = np.clip(c.values / (SUPPORT_FRACTION * c.peak_dff0), 0.0, 1.0)
        signal[c.slices] += (sd * lumps * taper).astype(np.float32)
    return signal
