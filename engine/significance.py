"""Significance of one detected event: its peak ΔF/F0 against the local noise, in noise SDs.

A detector (network or classical) proposes an instance; this module asks whether the data hold
a signal there at all. The measure is a matched-filter z-score computed on the instance's own
ΔF/F0 crop (the event plus the context the tracker keeps around it):

0. with a per-pixel resting level (the analyzer's, :class:`engine.noise_map.RestingLevels`,
   where the model's ``resting_baseline`` asks for it), each pixel's resting ΔF/F0 is first
   taken off, so that a pixel that is merely offset at rest from its neighbours (F0 is smoothed
   in space: a column of another offset or gain) is not an event; with a per-pixel noise map
   (the analyzer's, :mod:`engine.noise_map`), ΔF/F0 is then divided by each pixel's noise
   relative to the crop's median, so that dim, noisy pixels (nucleus, dark bands, cell edge)
   weigh no more than bright quiet ones;
1. box means of ΔF/F0 over a resolution element of ``box_um`` in space (X, and Y for movies) by
   ``box_ms`` in time (at least one pixel / one frame along each axis);
2. **signal** S = the largest box mean whose centre lies in the event's mask, less the median
   box mean of the surroundings before the event starts (0 when there are too few);
3. **local noise** σ = 1.4826 × MAD / √2 of the differences between box means one box apart in
   time, at every position of the crop that is farther than one box from the mask (the
   event's surroundings: same pixels, same laser, so shot noise and line flicker count, while
   an event's slow tail, drift and bleaching cancel in the differences); saturated pixels are
   left out of both;
4. significance z = S / σ.

Because S is the maximum over the mask, pure noise proposed as an event already reaches
z ≈ 2.5–4 (the maximum of a few hundred noise samples); a real event stands well above.
Events below the model's ``min_significance`` (``thresholds.json``; default
:data:`DEFAULT_MIN_SIGNIFICANCE`) are not reported, and are counted as rejected. With fewer than
:data:`MIN_NOISE_SAMPLES` noise positions (an event filling its whole crop) z is NaN and the
event is kept, flagged ``significance_unknown``.

**Against its own place before it** (:func:`local_significance`). Step 2 compares the event with
its surroundings. Where the resting ΔF/F0 is not zero everywhere (F0 is smoothed in space, so
near the cell's edge or a nucleus it is off by a fixed amount), a patch that is merely brighter
at rest than its surroundings passes for an event in a dim, noisy recording. The local
significance takes the baseline position by position instead: S_local = the largest box mean in
the mask less the same pixels' mean over the crop's frames before the event (spatial box only),
and σ_local = σ √(1 + box frames / frames before), the noise of that difference. A model's
``local_min_significance`` (``hybrid.json``) holds events to it too; with no frame before the
event it is NaN and the event is kept.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from engine.instances import Instance

_MAD_TO_SD = 1.4826
#: box of the matched filter: about the optical resolution in space, a few ms in time
BOX_UM = 1.0
BOX_MS = 20.0
#: events whose significance is below this are not reported (a model's thresholds.json
#: ``min_significance`` overrides it; see README "What the significance means")
DEFAULT_MIN_SIGNIFICANCE = 5.0
MIN_NOISE_SAMPLES = 20
#: thresholds key: the significance an event named *wave* must reach (a model's ``hybrid.json``
#: ``wave_min_significance``); without it a wave needs ``min_significance`` like any event
WAVE_MIN_SIGNIFICANCE_KEY = "wave_min_significance"
#: thresholds key: the :func:`local_significance` every event must reach (a model's
#: ``hybrid.json`` ``local_min_significance``); without it the local test is off
LOCAL_MIN_SIGNIFICANCE_KEY = "local_min_significance"
#: thresholds key: true to take each pixel's resting ΔF/F0 off before the test (step 0; a
#: model's ``thresholds.json``)
RESTING_BASELINE_KEY = "resting_baseline"
#: (space, time) multiples of the box tried; the significance is the largest z
SCALES: tuple[tuple[float, float], ...] = ((1.0, 1.0),)


def box_size(pixel_um: float, dt_ms: float, linescan: bool,
             box_um: float = BOX_UM, box_ms: float = BOX_MS) -> tuple[int, int, int]:
    """The matched filter's box in samples ``(t, y, x)``, odd sizes, at least 1."""
    def odd(n: float) -> int:
        return max(1, 2 * int(round((n - 1) / 2)) + 1)

    space = odd(box_um / pixel_um)
    return odd(box_ms / dt_ms), 1 if linescan else space, space


def significance(instance: Instance, pixel_um: float, dt_ms: float,
                 saturated: np.ndarray | None = None,
                 noise_map: np.ndarray | None = None,
                 resting: np.ndarray | None = None) -> float:
    """Significance (noise SDs) of ``instance``; NaN when the crop holds too little noise.

    Parameters
    ----------
    instance : Instance
        The event with its ΔF/F0 crop (``dff0``) and mask.
    pixel_um, dt_ms : float
        Calibration.
    saturated : ndarray of bool, optional
        Saturated pixels, same shape as ``instance.dff0``; excluded from signal and noise.
    noise_map : ndarray, optional
        Per-pixel noise SD of ΔF/F0 over the whole frame (``(X,)`` or ``(Y, X)``): the crop is
        divided by it first, so that a dim, noisy pixel does not pass for a bright event.
    resting : ndarray, optional
        Per-pixel resting ΔF/F0 over the whole frame (same shapes): taken off the crop first.
    """
    return significances(instance, pixel_um, dt_ms, saturated, noise_map, resting=resting)[0]


def local_significance(instance: Instance, pixel_um: float, dt_ms: float,
                       saturated: np.ndarray | None = None,
                       noise_map: np.ndarray | None = None,
                       resting: np.ndarray | None = None) -> float:
    """Significance (noise SDs) of ``instance`` against the same pixels before it started
    (module docstring); NaN with no frame before the event or too little noise. Arguments as
    :func:`significance`."""
    return significances(instance, pixel_um, dt_ms, saturated, noise_map, local=True,
                         resting=resting)[1]


def significances(instance: Instance, pixel_um: float, dt_ms: float,
                  saturated: np.ndarray | None = None, noise_map: np.ndarray | None = None,
                  local: bool = False,
                  resting: np.ndarray | None = None) -> tuple[float, float]:
    """``(significance, local significance)`` of ``instance`` from one pass over its crop (the
    box means and the noise are shared); the local one is NaN unless ``local``. Arguments as
    :func:`significance`."""
    dff0, valid, mask = _prepared(instance, saturated, noise_map, resting)
    linescan = instance.stream_kind.is_linescan
    base = box_size(pixel_um, dt_ms, linescan)
    stats_of = {}
    for space, time in SCALES:
        box = box_size(pixel_um, dt_ms, linescan, BOX_UM * space, BOX_MS * time)
        stats_of.setdefault(box, _box_stats(dff0, valid, mask, box))
    zs = [z for z in (_z(stats, mask) for stats in stats_of.values()) if math.isfinite(z)]
    z_local = math.nan
    if local:
        stats = stats_of.get(base) or _box_stats(dff0, valid, mask, base)
        z_local = _local_z(dff0, valid, mask, base, stats)
    return (max(zs) if zs else math.nan), z_local


def _prepared(instance: Instance, saturated: np.ndarray | None,
              noise_map: np.ndarray | None,
              resting: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 0: the crop's ΔF/F0 (less each pixel's resting level and noise-weighted, with
    those maps), its valid pixels and the mask."""
    dff0 = instance.dff0.astype(np.float64)
    if resting is not None:
        dff0 = dff0 - _crop(resting, instance)
    if noise_map is not None:
        dff0 = dff0 / _crop_noise(noise_map, instance)
    valid = np.isfinite(dff0)
    if saturated is not None:
        valid &= ~saturated
    return dff0, valid, instance.mask_in_context()


def _box_stats(dff0: np.ndarray, valid: np.ndarray, mask: np.ndarray,
               box: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Steps 1 and 3: box means, where they are usable, the mask's near surroundings and the
    local noise σ."""
    weights = ndimage.uniform_filter(valid.astype(np.float64), box, mode="constant")
    sums = ndimage.uniform_filter(np.where(valid, dff0, 0.0), box, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / weights
    usable = weights >= 0.5
    near = box_dilation(mask, box)
    return means, usable, near, _noise_sd(means, usable & ~near, box[0])


def box_dilation(mask: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
    """``ndimage.binary_dilation(mask, np.ones(box, bool))``, exactly, as one 1-D dilation per
    axis (a box is the sum of its edges: cost by their lengths, not by the box's volume)."""
    out = mask
    for axis, size in enumerate(box):
        if size > 1:
            shape = [1] * mask.ndim
            shape[axis] = size
            out = ndimage.binary_dilation(out, np.ones(shape, bool))
    return out if out is not mask else mask.copy()


def _z(stats: tuple, mask: np.ndarray) -> float:
    """Steps 2 and 4 of the module docstring from one box's :func:`_box_stats`."""
    means, usable, near, sd = stats
    signal = means[usable & mask]
    if signal.size == 0 or not sd > 0:
        return math.nan
    return float((signal.max() - _baseline(means, usable & ~near, mask)) / sd)


def _local_z(dff0: np.ndarray, valid: np.ndarray, mask: np.ndarray, box: tuple[int, int, int],
             stats: tuple) -> float:
    """The local significance (module docstring) from the box's :func:`_box_stats`."""
    means, usable, _, sd = stats
    before = int(np.argmax(mask.any(axis=(1, 2))))
    if before < 1 or not sd > 0:
        return math.nan
    space = (1, *box[1:])
    weights = ndimage.uniform_filter(valid[:before].astype(np.float64), space,
                                     mode="constant").sum(axis=0)
    sums = ndimage.uniform_filter(np.where(valid[:before], dff0[:before], 0.0), space,
                                  mode="constant").sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rise = means - (sums / weights)[None]
    inside = usable & mask & np.isfinite(rise)
    if not inside.any():
        return math.nan
    return float(rise[inside].max() / (sd * math.sqrt(1.0 + box[0] / before)))


def _crop(frame_map: np.ndarray, instance: Instance) -> np.ndarray:
    """A whole-frame map (``(X,)`` or ``(Y, X)``) under the instance's crop, shaped to
    broadcast over ``(t, y, x)``."""
    values = np.asarray(frame_map, np.float64).reshape(-1, frame_map.shape[-1])
    _, y0, x0 = instance.dff0_origin
    _, height, width = instance.dff0.shape
    return values[y0:y0 + height, x0:x0 + width][None]


def _crop_noise(noise_map: np.ndarray, instance: Instance) -> np.ndarray:
    """The noise map under the instance's crop, shaped to broadcast over ``(t, y, x)``;
    normalized to a median of 1 so that z stays in units of the crop's typical noise. Where
    most of the crop reads no noise at all (dark pixels of integer data whose frame differences
    are mostly 0), the median of its noisy pixels is the unit instead; with none, the crop is
    not weighted."""
    crop = _crop(noise_map, instance)[0]
    unit = float(np.median(crop))
    if not unit > 0:
        noisy = crop[np.isfinite(crop) & (crop > 0)]
        if noisy.size == 0:
            return np.ones_like(crop)[None]
        unit = float(np.median(noisy))
    return np.maximum(crop / unit, 0.25)[None]


def _noise_sd(means: np.ndarray, background: np.ndarray, lag: int) -> float:
    """SD of box means from their differences ``lag`` frames apart (one box) at background
    positions: slow signal such as an event's tail or bleaching cancels, noise does not."""
    lag = min(lag, means.shape[0] - 1)
    if lag < 1:
        return math.nan
    both = background[lag:] & background[:-lag]
    diffs = means[lag:][both] - means[:-lag][both]  # only usable boxes (others may be ±inf)
    if diffs.size < MIN_NOISE_SAMPLES:
        return math.nan
    spread = float(np.median(np.abs(diffs - np.median(diffs))))
    return _MAD_TO_SD * spread / math.sqrt(2.0)


def _baseline(means: np.ndarray, background: np.ndarray, mask: np.ndarray) -> float:
    """Median box mean of the background before the event starts (0 when there is none:
    ΔF/F0 is zero at rest by construction)."""
    start = int(np.argmax(mask.any(axis=(1, 2))))
    before = means[:start][background[:start]]
    return float(np.median(before)) if before.size >= MIN_NOISE_SAMPLES else 0.0
