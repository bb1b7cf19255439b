"""Instances of Ca²⁺ events and the per-region rules of Dotti et al. (2024) post-processing.

A *region* is one connected component of foreground (after merging temporal gaps); this module
turns a closed region into zero or more :class:`Instance` objects:

* its class is the majority class of the region (the class with the largest summed probability
  over the region's foreground pixels); each connected part of the region whose pixels' argmax
  is a *minority* class listed in ``split_off_kinds``, that passes that class's size filter and
  whose mean probability of that class is ≥ ``split_min_probability`` becomes an event of its
  own (a spark or puff beside or on a wave); other minority parts stay with the majority, and
  with ``split_off_kinds=()`` a region is never cut into pieces of different classes (where
  the majority is wave, only the kinds also in ``wave_split_off_kinds`` split off). Chosen on
  simulated validation movies: splitting raised spark F1 0.897 → 0.923 and puff F1
  0.861 → 0.882; without the probability floor wave tails split off as false puffs (puff F1
  0.70);
* spark regions are split into single sparks by peak finding on the smoothed ΔF/F0 (peaks at
  least ``peak_min_dist_um`` **or** ``peak_min_dist_ms`` apart: a box footprint of that size) and a
  watershed of the inverted smoothed ΔF/F0 inside the region;
* size filters (sparks ≥ 3 frames and ≥ 0.6 µm, puffs ≥ 5 frames, waves ≥ 15 µm wide) and the
  width rules that name a wide spark or puff a wave: :mod:`engine.instance_size`.

Arrays are handled as ``(T, Y, X)``; a line-scan is ``(T, 1, X)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from acquisition.labels import PUFF, SPARK, WAVE
from acquisition.stream_kind import StreamKind
from engine.pair_split import PairRule

#: class id -> event kind
KIND_OF_CLASS = {SPARK: "spark", WAVE: "wave", PUFF: "puff"}
#: order of the class channels kept by the tracker (probabilities of spark, wave, puff)
EVENT_CLASSES = (SPARK, WAVE, PUFF)
#: full 3x3x3 connectivity of regions and of their parts
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class TrackerConfig:
    """Post-processing parameters in physical units (Dotti et al. defaults).

    A model directory's ``postprocess.json`` sets them (section ``tracker``, and
    ``tracker_overrides`` for one detector; :mod:`engine.models.postprocess_file`); these
    defaults apply where it says nothing.

    Dotti et al. give gaps and minimum durations in frames of their 6.8 ms movies (gaps ≤ 2
    frames, sparks ≥ 3 frames, puffs ≥ 5 frames); they are kept here in ms so that a 1.5 ms
    line-scan gets the same physical tolerances (9, 14 and 23 lines) instead of 3–8 ms ones,
    which split slow, noisy puffs into fragments.
    """

    gap_ms: float = 2 * 6.8
    spark_min_ms: float = 3 * 6.8
    spark_min_width_um: float = 0.6
    puff_min_ms: float = 5 * 6.8
    wave_min_width_um: float = 15.0
    peak_min_dist_um: float = 1.8
    peak_min_dist_ms: float = 20.0
    peak_sigma_um: float = 0.3
    peak_sigma_ms: float = 3.0
    context_before_ms: float = 25.0
    context_after_ms: float = 30.0
    context_margin_um: float = 2.5
    split_off_kinds: tuple[str, ...] = ("spark", "puff")
    #: of ``split_off_kinds``, those that may split off a region whose majority is *wave*;
    #: the others stay part of the wave (a puff-like patch at a wave's edge or in its tail is
    #: the wave's own, where a spark firing on the wave is an event of its own)
    wave_split_off_kinds: tuple[str, ...] = ("spark", "puff")
    split_min_probability: float = 0.8
    #: None: sparks split at peaks ``peak_min_dist_*`` apart (Dotti). A number: at every
    #: smoothed-ΔF/F0 maximum whose dip to the next higher one is at least this many noise SDs
    #: of the smoothed data (h-maxima), however close -- pairs split, noise bumps do not
    split_dip_sd: float | None = None
    #: None: a line-scan spark piece stays as the dip split left it. A number: it is fitted
    #: with one and with two spark shapes and split in two where the two leave at least this
    #: fraction of its sum of squares less unexplained, their centres lie
    #: ``pair_split_min_separation_um`` apart and each peaks ``pair_split_min_peak_sd`` noise
    #: SDs and ``pair_split_min_peak_ratio`` of the other high, and the second explains
    #: ``pair_split_min_excess_explained`` of the one's misfit beyond the noise
    #: (:mod:`engine.pair_split`: a pair whose second spark starts on the first one's top)
    pair_split_min_gain_fraction: float | None = None
    pair_split_min_separation_um: float = PairRule.min_separation_um
    pair_split_min_peak_sd: float = PairRule.min_peak_sd
    pair_split_min_peak_ratio: float = PairRule.min_peak_ratio
    pair_split_min_excess_explained: float = PairRule.min_excess_explained
    #: and the two peak ``pair_split_min_delay_ms`` apart and differ in width by at most
    #: ``pair_split_max_width_ratio`` times (None: not tested)
    pair_split_min_delay_ms: float = PairRule.min_delay_ms
    pair_split_max_width_ratio: float | None = None
    #: None: no second rule. A number: a piece the rule above keeps whole is also split where
    #: its lower shape peaks at least this many noise SDs high and the stricter
    #: ``pair_split_faint_*`` conditions hold (centres, misfit explained, delay, widths; the
    #: gain and the peak ratio as above): a faint pair needs more evidence of being two
    pair_split_faint_min_peak_sd: float | None = None
    pair_split_faint_min_separation_um: float = 1.0
    pair_split_faint_min_excess_explained: float = 0.7
    pair_split_faint_min_delay_ms: float = 10.0
    pair_split_faint_max_width_ratio: float = 1.5
    #: None: each spark of a split pair is characterized on the ΔF/F0 both share. A number:
    #: on the ΔF/F0 less this fraction of the other spark's fitted shape (deblending: the
    #: neighbour's top otherwise holds the profile's peak and stretches the rise)
    pair_split_deblend_fraction: float | None = None
    #: None: a region named puff stays a puff. A number: a puff whose extent over its whole
    #: life reaches this many µm travelled like a wave and is named wave (the class rules name
    #: a wave only by a front this wide within one frame, which a wave crossing a narrow cell
    #: never shows)
    wide_puff_is_wave_um: float | None = None
    #: None: a region named spark is split into sparks. A number: a spark piece whose front
    #: reaches this many µm within one frame is named wave and not split (no spark is that
    #: wide; a network whose window sees only a wave's plateau -- a 0.5-ms line-scan -- names
    #: it spark, and the split then cuts it into dozens of false sparks)
    wide_spark_is_wave_um: float | None = None
    #: None: a region named wave is one wave. A number: a wave piece is cut as spark pieces
    #: are (``split_dip_sd``, else the peak distances); a part that stands on the rest as an
    #: event of its own and whose core stays narrower than this many µm within every frame is
    #: a spark (on the wave's tail, before its front), the rest stays one wave
    #: (:meth:`engine.region_instances.RegionInstances._wave_and_sparks`)
    wave_split_width_um: float | None = None
    #: such a spark is reported only at or above this significance (and the stream's floor)
    wave_split_min_significance: float | None = None
    #: a part stands on the rest as an event of its own where its peak rises above the level
    #: it stands on (the highest pixel of its border) by at least this fraction of that level
    #: (1.0: it doubles what is under it)
    wave_split_min_rise_ratio: float = 1.0
    #: a region lasting longer is cut this long after its start (closed or not): every piece
    #: is an event flagged ``truncated``, so a region that never closes (a flickering or
    #: drifting patch) cannot hold frames, and be labelled again on every push, without end.
    #: Far above any Ca²⁺ event (waves last ~1-3 s)
    max_event_ms: float = 10_000.0


@dataclass
class Instance:
    """One detected event: a boolean mask crop plus the ΔF/F0 around it.

    Attributes
    ----------
    kind : {"spark", "puff", "wave"}
    score : float
        Mean probability of ``kind`` over the instance's pixels.
    mask : ndarray of bool, shape (t, y, x)
        The instance's pixels (``y`` has size 1 for line-scans).
    origin : tuple of int
        Absolute (frame, y, x) index of ``mask[0, 0, 0]``.
    dff0 : ndarray of float32, shape (t', y', x')
        ΔF/F0 crop containing the mask plus context frames before/after and a spatial margin.
    dff0_origin : tuple of int
        Absolute (frame, y, x) index of ``dff0[0, 0, 0]``.
    axes : {"TX", "TYX"}
    event_id : int
        Assigned by the tracker (1, 2, ... in a block-independent order).
    saturated : ndarray of bool, optional
        Saturated pixels, same shape as :attr:`dff0` (None when the stream has none).
    significance : float
        Peak ΔF/F0 against the local noise (:mod:`engine.significance`), set by the tracker's
        ``accept`` check; NaN until then.
    over_budget : bool
        Closed in a burst beyond the stream's characterization budget (:mod:`engine.burst`):
        reported with its position and times only.
    truncated : bool
        A piece of a region that lasted longer than ``TrackerConfig.max_event_ms`` and was cut:
        reported with its position and times only.
    characterized : dict, optional
        Its characterization, where the ``accept`` check already needed it
        (:mod:`engine.tails`); None until then.
    min_significance : float, optional
        A floor of its own for the ``accept`` check, above the stream's (a spark cut out of a
        wave: ``TrackerConfig.wave_split_min_significance``); None: the stream's.
    """

    kind: str
    score: float
    mask: np.ndarray
    origin: tuple[int, int, int]
    dff0: np.ndarray
    dff0_origin: tuple[int, int, int]
    axes: str = "TX"
    event_id: int = 0
    sort_key: tuple = field(default=(), repr=False)
    saturated: np.ndarray | None = field(default=None, repr=False)
    significance: float = math.nan
    over_budget: bool = False
    truncated: bool = False
    characterized: dict | None = field(default=None, repr=False)
    min_significance: float | None = None

    @property
    def stream_kind(self) -> StreamKind:
        """Line-scan or movie, from :attr:`axes`."""
        return StreamKind.from_axes(self.axes)

    @property
    def t_start(self) -> int:
        """First frame of the instance."""
        return self.origin[0]

    @property
    def t_end(self) -> int:
        """Last frame of the instance (inclusive)."""
        return self.origin[0] + self.mask.shape[0] - 1

    @property
    def n_pixels(self) -> int:
        """Number of pixels in the mask."""
        return int(self.mask.sum())

    def mask_in_context(self) -> np.ndarray:
        """The mask placed in the coordinate frame of :attr:`dff0`."""
        full = np.zeros(self.dff0.shape, dtype=bool)
        offset = [o - c for o, c in zip(self.origin, self.dff0_origin, strict=True)]
        region = tuple(slice(o, o + n) for o, n in zip(offset, self.mask.shape, strict=True))
        full[region] = self.mask
        return full


def frames_of(duration_ms: float, dt_ms: float) -> int:
    """Number of whole frames covering ``duration_ms`` (at least 0)."""
    return max(0, int(math.ceil(duration_ms / dt_ms - 1e-9)))


def region_class(probs_region: np.ndarray) -> int:
    """Majority class of a region: argmax of the summed (spark, wave, puff) probabilities.

    ``probs_region`` has shape (3, n_pixels) in :data:`EVENT_CLASSES` order.
    """
    return EVENT_CLASSES[int(np.argmax(probs_region.sum(axis=1)))]


def class_pieces(
    probs_region: np.ndarray, pixels: np.ndarray, keeps: Callable[[int, np.ndarray], bool],
    gap_frames: int, split_off: tuple[int, ...] = EVENT_CLASSES, min_probability: float = 0.0,
    split_off_wave: tuple[int, ...] | None = None,
) -> list[tuple[int, np.ndarray]]:
    """Cut a region into pieces of one class each (see the module docstring).

    Parameters
    ----------
    probs_region : ndarray (3, t, y, x)
        (spark, wave, puff) probabilities on the region's bounding box.
    pixels : ndarray of bool (t, y, x)
        The region's pixels.
    keeps : callable
        ``keeps(cls, mask)``: whether a minority part of class ``cls`` stands on its own (the
        size filter).
    gap_frames : int
        Temporal gaps bridged when labelling the parts (as for the region itself).
    split_off : tuple of int
        Minority classes that may split off (others always stay with the majority).
    min_probability : float
        A minority part splits off only if its mean probability of its class reaches this.
    split_off_wave : tuple of int, optional
        Where the majority is wave, only the classes of ``split_off`` also listed here split
        off (None: all of ``split_off``).

    Returns
    -------
    list of (class id, mask)
        The majority class first (its mask may be empty), then the minority parts.
    """
    majority = region_class(probs_region[:, pixels])
    if majority == WAVE and split_off_wave is not None:
        split_off = tuple(cls for cls in split_off if cls in split_off_wave)
    argmax = np.asarray(EVENT_CLASSES)[np.argmax(probs_region, axis=0)]
    rest = pixels.copy()
    pieces: list[tuple[int, np.ndarray]] = []
    for cls in EVENT_CLASSES:
        if cls == majority or cls not in split_off:
            continue
        own = pixels & (argmax == cls)
        if not own.any():
            continue
        probs = probs_region[EVENT_CLASSES.index(cls)]
        parts, _ = ndimage.label(fill_temporal_gaps(own, gap_frames), structure=CONNECTIVITY)
        for label, part_slices in enumerate(ndimage.find_objects(parts), start=1):
            if part_slices is None:
                continue
            crop = (parts[part_slices] == label) & own[part_slices]
            if probs[part_slices][crop].mean() >= min_probability and keeps(cls, crop):
                part = np.zeros_like(own)
                part[part_slices] = crop
                pieces.append((cls, part))
                rest[part_slices] &= ~crop
    return [(majority, rest), *pieces]


#: gaps up to this many frames are filled with shifted boolean arrays (cheaper than the running
#: max/min of frame indices for the short gaps of movies: 2 frames at 6.8 ms)
SHIFT_GAPS_MAX = 6


def fill_temporal_gaps(mask: np.ndarray, gap_frames: int) -> np.ndarray:
    """Set runs of ≤ ``gap_frames`` False frames between two True frames of the same pixel.

    A False frame ``t`` is filled when the nearest True frames before and after it, at
    distances ``a`` and ``b``, leave a gap ``a + b − 1 ≤ gap_frames``. Short gaps: the OR over
    ``a`` of "True within ``a`` frames before" and "True within ``gap_frames + 1 − a`` frames
    after" (boolean shifts, O(gap × T)); longer ones: the last True frame at or before each
    frame and the next at or after it from running max/min of frame indices (O(T)).
    """
    mask = np.asarray(mask, bool)
    n = mask.shape[0]
    if gap_frames < 1 or n < 3:
        return mask.copy()
    if gap_frames <= SHIFT_GAPS_MAX:
        before, after = _within(mask, gap_frames, +1), _within(mask, gap_frames, -1)
        out = mask.copy()
        for a in range(1, gap_frames + 1):
            out |= before[a] & after[gap_frames + 1 - a]
        return out
    index = np.arange(n, dtype=np.int32).reshape((n,) + (1,) * (mask.ndim - 1))
    last = np.maximum.accumulate(np.where(mask, index, np.int32(-1)), axis=0)
    nxt = np.minimum.accumulate(np.where(mask, index, np.int32(n))[::-1], axis=0)[::-1]
    bridge = (last >= 0) & (nxt < n) & (nxt - last - 1 <= gap_frames)
    return mask | bridge


def _within(mask: np.ndarray, k_max: int, direction: int) -> list[np.ndarray | None]:
    """``[None, w1, …, w_k_max]``: ``w_k[t]`` is whether ``mask`` is True at some frame
    ``t − j`` (direction +1: before) or ``t + j`` (−1: after), ``1 ≤ j ≤ k``."""
    out: list[np.ndarray | None] = [None]
    current = np.zeros_like(mask)
    for k in range(1, min(k_max, mask.shape[0] - 1) + 1):
        current = current.copy()
        if direction > 0:
            current[k:] |= mask[:-k]
        else:
            current[:-k] |= mask[k:]
        out.append(current)
    out.extend([current] * (k_max + 1 - len(out)))
    return out


def smooth_dff0(dff0: np.ndarray, sigma_frames: float, sigma_px: float, linescan: bool) -> np.ndarray:
    """Gaussian smoothing of a (T, Y, X) ΔF/F0 crop (no smoothing across the singleton Y)."""
    sigma = (sigma_frames, 0.0 if linescan else sigma_px, sigma_px)
    return ndimage.gaussian_filter(dff0.astype(np.float32), sigma=sigma, mode="nearest")


def _dip_split(smoothed: np.ndarray, mask: np.ndarray, floor: float,
               min_dip: float) -> np.ndarray | None:
    """:func:`split_sparks` by ``min_dip`` on an array of any rank (full connectivity); None
    where it finds at most one marker."""
    values = np.where(mask, smoothed, floor).astype(np.float64)
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    markers, n = ndimage.label(h_maxima(values, min_dip).astype(bool) & mask, structure=structure)
    if n <= 1:
        return None
    return watershed(-smoothed, markers=markers, mask=mask).astype(np.int32)


def split_sparks(
    smoothed: np.ndarray, mask: np.ndarray, min_dist_frames: int, min_dist_px: int, linescan: bool,
    min_dip: float | None = None,
) -> np.ndarray:
    """Split a spark region into single sparks (peak finding + watershed).

    Parameters
    ----------
    smoothed : ndarray (t, y, x)
        Smoothed ΔF/F0 on the region's bounding box.
    mask : ndarray of bool (t, y, x)
        The region's pixels.
    min_dist_frames, min_dist_px : int
        Two peaks closer than this in time **and** in space keep only the larger one.
    min_dip : float, optional
        Instead of the distances: markers are the maxima whose dip to any higher maximum is at
        least ``min_dip`` (``skimage.morphology.h_maxima``).

    Returns
    -------
    ndarray of int32 (t, y, x)
        0 outside the region, 1..k for the k sparks.
    """
    if min_dip is not None:
        inside = smoothed[mask]
        if inside.size == 0 or not min_dip > 0:
            return mask.astype(np.int32)
        if linescan and mask.shape[1] == 1:  # the same result on (t, x): 4x faster than (t, 1, x)
            flat = _dip_split(smoothed[:, 0], mask[:, 0], inside.min(), min_dip)
            return flat[:, None] if flat is not None else mask.astype(np.int32)
        parts = _dip_split(smoothed, mask, inside.min(), min_dip)
        return parts if parts is not None else mask.astype(np.int32)
    footprint = np.ones(
        (2 * min_dist_frames + 1, 1 if linescan else 2 * min_dist_px + 1, 2 * min_dist_px + 1),
        dtype=bool,
    )
    values = np.where(mask, smoothed, np.float32(-np.inf))
    peaks = peak_local_max(
        values, footprint=footprint, labels=mask.astype(np.int32), exclude_border=False
    )
    if len(peaks) <= 1:
        return mask.astype(np.int32)
    peaks = peaks[np.lexsort(peaks.T[::-1])]  # deterministic marker ids: by (t, y, x)
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    return watershed(-smoothed, markers=markers, mask=mask).astype(np.int32)
