"""One closed region of foreground → its event instances (step 4 of :mod:`engine.postprocess`).

A region whose highest foreground probability stays below the hysteresis ``seed`` threshold
is dropped. Otherwise its pixels take the majority class, with confident minority-class parts
that pass their size filter split off (:func:`~engine.instances.class_pieces`); spark pieces
are split into single sparks (unless their front within one frame reaches
``wide_spark_is_wave_um``: then they are one wave) by peaks + watershed on the smoothed ΔF/F0
around them, or at dips deeper than ``split_dip_sd`` noise SDs (the noise measured in that context, outside the
region); with ``wave_split_width_um``, a wave piece is cut the same way and the sparks standing
on it (on its tail, before its front) become spark pieces, each held to its own significance
floor ``wave_split_min_significance`` (:meth:`RegionInstances._wave_and_sparks`); every part
that passes its size filter becomes an
:class:`~engine.instances.Instance` (a puff at least ``wide_puff_is_wave_um`` wide named a
wave), scored by the mean probability of its class. Which region is closed, which frames are held around
it, and the ids, are :class:`~engine.postprocess.InstanceTracker`'s business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from acquisition.labels import CLASS_IDS
from acquisition.stream_kind import StreamKind
from engine.boxes import grown, padded_box
from engine.instance_size import (
    passes_size_filter,
    wide_puff_is_wave,
    wide_spark_is_wave,
    widest_front_um,
)
from engine.instances import (
    CONNECTIVITY,
    EVENT_CLASSES,
    KIND_OF_CLASS,
    Instance,
    TrackerConfig,
    class_pieces,
    frames_of,
    smooth_dff0,
    split_sparks,
)
from engine.pair_split import PairRule, shape_values, split_pair_shapes


@dataclass(frozen=True)
class ClosedRegion:
    """A closed region as the tracker holds it (indices in its held frames, from ``first``)."""

    pixels: np.ndarray  # bool (t, y, x): the region's pixels in its bounding box
    slices: tuple[slice, ...]  # the bounding box
    first: int  # absolute index of held frame 0
    fg_prob: np.ndarray  # foreground probability in the box
    probs: np.ndarray  # (3, t, y, x): probability of each event class, in EVENT_CLASSES order
    context: np.ndarray  # ΔF/F0 around the box (context frames, spatial margin)
    context_start: tuple[int, int, int]  # where ``context`` starts
    closing_frame: int  # the frame whose arrival closed it: the first key of the id order


class RegionInstances:
    """The instances of one stream's closed regions, by its calibration, seed threshold and
    :class:`~engine.instances.TrackerConfig`."""

    def __init__(self, stream_kind: StreamKind, pixel_um: float, dt_ms: float,
                 config: TrackerConfig, seed_threshold: float) -> None:
        self.stream_kind = stream_kind
        self.pixel_um, self.dt_ms = float(pixel_um), float(dt_ms)
        self.config = config
        self.seed_threshold = seed_threshold
        self.gap_frames = frames_of(config.gap_ms, dt_ms)
        self._split_off = tuple(CLASS_IDS[kind] for kind in config.split_off_kinds)
        self._split_off_wave = tuple(CLASS_IDS[kind] for kind in config.wave_split_off_kinds)
        #: the ΔF/F0 context around a region's box, and around each instance's own box:
        #: ``(before, y, x)`` samples before its start and ``(after, y, x)`` after its stop
        #: (``context_before_ms`` / ``context_after_ms``, ``context_margin_um``; no y margin on
        #: a line-scan); the tracker holds and crops a region's context by them
        margin_px = int(math.ceil(config.context_margin_um / pixel_um))
        margin_y = 0 if stream_kind.is_linescan else margin_px
        self.context_low = (frames_of(config.context_before_ms, dt_ms), margin_y, margin_px)
        self.context_high = (frames_of(config.context_after_ms, dt_ms), margin_y, margin_px)

    def instances(self, region: ClosedRegion) -> list[Instance]:
        """Its instances, in (piece, part) order, with ``sort_key`` set and no ``event_id``."""
        slices, probs = region.slices, region.probs
        if region.fg_prob[region.pixels].max() < self.seed_threshold:
            return []
        pieces = class_pieces(probs, region.pixels, self._stands_alone, self.gap_frames,
                              self._split_off, self.config.split_min_probability,
                              self._split_off_wave)
        context, start = region.context, region.context_start
        inner = tuple(slice(s.start - c, s.stop - c) for s, c in zip(slices, start, strict=True))
        context_origin = (region.first + start[0], start[1], start[2])
        linescan = self.stream_kind.is_linescan
        smoothed = _SmoothedContext(context, inner, self.config, self.dt_ms, self.pixel_um,
                                    linescan)
        out = []
        for piece_index, piece, kind, floor in self._named(pieces, smoothed):
            partners: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
            parts = (self._split_pairs(smoothed, self._split(smoothed, piece), partners)
                     if kind == "spark" else piece.astype(np.int32))
            channel = EVENT_CLASSES.index(CLASS_IDS[kind])
            for part, part_slices in enumerate(ndimage.find_objects(parts), start=1):
                if part_slices is None:
                    continue
                mask = parts[part_slices] == part
                if not passes_size_filter(kind, mask, self.pixel_um, self.dt_ms, self.config,
                                          linescan):
                    continue
                named = wide_puff_is_wave(kind, mask, self.pixel_um, self.config, linescan)
                origin = (
                    region.first + slices[0].start + part_slices[0].start,
                    slices[1].start + part_slices[1].start,
                    slices[2].start + part_slices[2].start,
                )
                score = float(probs[channel][part_slices][mask].mean())
                key = (region.closing_frame, *origin, piece_index, part)
                crop = self._own_crop(context.shape, context_origin, origin, mask.shape)
                own = context[crop]
                if part in partners:
                    shape, (t0, x0) = partners[part]
                    own = self._deblended(own, shape, (t0 - crop[0].start, x0 - crop[2].start))
                own_origin = tuple(o + c.start for o, c in zip(context_origin, crop, strict=True))
                out.append(Instance(named, score, mask, origin, own, own_origin,
                                    self.stream_kind.axes, sort_key=key, min_significance=floor))
        return out

    def _named(self, pieces: list[tuple[int, np.ndarray]], smoothed: _SmoothedContext
               ) -> list[tuple[int, np.ndarray, str, float | None]]:
        """``(index, piece, kind, significance floor)`` of each non-empty piece; with
        ``wave_split_width_um``, the sparks on a wave piece become spark pieces after all of
        them (indices from ``len(pieces)`` on), held to ``wave_split_min_significance``."""
        linescan = self.stream_kind.is_linescan
        out, sparks = [], []
        for index, (cls, piece) in enumerate(pieces):
            if not piece.any():
                continue
            kind = wide_spark_is_wave(KIND_OF_CLASS[cls], piece, self.pixel_um, self.config,
                                      linescan)
            if kind == "wave" and self.config.wave_split_width_um is not None:
                piece, on_wave = self._wave_and_sparks(smoothed, piece)
                sparks += on_wave
            out.append((index, piece, kind, None))
        floor = self.config.wave_split_min_significance
        return out + [(len(pieces) + i, spark, "spark", floor) for i, spark in enumerate(sparks)]

    def _wave_and_sparks(self, smoothed: _SmoothedContext,
                         piece: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """A wave piece without the sparks on it, and those sparks.

        The piece is cut as spark pieces are (:meth:`_split`); a part is a spark where its
        peak stands above the highest pixel of its border with the other parts (the level it
        stands on) by at least ``wave_split_min_rise_ratio`` of that level (1: it doubles what
        is under it: its own event, not a bump on the wave's front), and its core -- the pixels
        above that level by 20 % of its rise, the ground truth's share of an event's own peak
        -- stays narrower than ``wave_split_width_um`` within every frame. The rest of its part
        stays wave."""
        values = smoothed.values[smoothed.inner]
        parts = self._split(smoothed, piece)
        wave, sparks = piece.copy(), []
        for part, part_slices in enumerate(ndimage.find_objects(parts), start=1):
            if part_slices is None:
                continue
            box = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1))  # part and border
                        for s, n in zip(part_slices, parts.shape, strict=True))
            mask = parts[box] == part
            border = ndimage.binary_dilation(mask, structure=CONNECTIVITY) & piece[box] & ~mask
            if not border.any():
                continue
            local = values[box]
            level, peak = float(local[border].max()), float(local[mask].max())
            if not (level > 0 and peak - level >= self.config.wave_split_min_rise_ratio * level):
                continue
            core = mask & (local >= level + 0.2 * (peak - level))
            if widest_front_um(core, self.pixel_um,
                               self.stream_kind.is_linescan) < self.config.wave_split_width_um:
                sparks.append(_placed(core, box, piece.shape))
                wave[box] &= ~core
        return wave, sparks

    def _stands_alone(self, cls: int, mask: np.ndarray) -> bool:
        """Whether a minority part of class ``cls`` passes its size filter."""
        return passes_size_filter(KIND_OF_CLASS[cls], mask, self.pixel_um, self.dt_ms,
                                  self.config, self.stream_kind.is_linescan)

    def _split(self, smoothed: _SmoothedContext, pixels: np.ndarray) -> np.ndarray:
        """Single sparks of a spark piece (``pixels``, in the region's box), labelled."""
        cfg = self.config
        min_frames = max(1, int(round(cfg.peak_min_dist_ms / self.dt_ms)) - 1)
        min_px = max(1, int(round(cfg.peak_min_dist_um / self.pixel_um)) - 1)
        min_dip = None
        if cfg.split_dip_sd is not None:  # the noise comes from the context around the region
            min_dip = cfg.split_dip_sd * smoothed.noise_sd
        out = np.zeros(pixels.shape, np.int32)
        if not pixels.any():
            return out
        box = padded_box(pixels, (0,) * pixels.ndim)  # cost by the piece, not the region
        out[box] = split_sparks(smoothed.values[smoothed.inner][box], pixels[box], min_frames,
                                min_px, self.stream_kind.is_linescan, min_dip)
        return out

    def _split_pairs(self, smoothed: _SmoothedContext, parts: np.ndarray,
                     partners: dict[int, tuple[np.ndarray, tuple[int, int]]]) -> np.ndarray:
        """Each line-scan spark part cut in two where two spark shapes explain it much better
        than one (:func:`engine.pair_split.split_pair`, ``pair_split_*``) and both halves pass
        the spark size filter; relabelled 1… in part order. With ``pair_split_deblend_fraction``,
        ``partners`` receives, for each half, the other half's fitted shape and where its
        box starts in the context (frame, pixel)."""
        cfg = self.config
        rules = pair_rules(cfg)
        if not rules or not self.stream_kind.is_linescan:
            return parts
        deblend = cfg.pair_split_deblend_fraction is not None
        values = smoothed.values[smoothed.inner]
        out = np.zeros_like(parts)
        n = 0
        for part, part_slices in enumerate(ndimage.find_objects(parts), start=1):
            if part_slices is None:
                continue
            mask = parts[part_slices] == part
            split = split_pair_shapes(values[part_slices], mask, smoothed.noise_sd, self.dt_ms,
                                      self.pixel_um, rules)
            halves, shapes = split if split is not None else (None, None)
            if halves is None or not all(
                    passes_size_filter("spark", halves == h, self.pixel_um, self.dt_ms, cfg,
                                       linescan=True) for h in (1, 2)):
                halves, shapes = mask.astype(np.int32), None
            view = out[part_slices]
            box = (smoothed.inner[0].start + part_slices[0].start,
                   smoothed.inner[2].start + part_slices[2].start)
            for h in (1, 2):
                if (halves == h).any():
                    n += 1
                    view[halves == h] = n
                    if deblend and shapes is not None:
                        partners[n] = (shapes[2 - h], box)
        return out

    def _own_crop(self, shape: tuple[int, ...], context_origin: tuple[int, int, int],
                  origin: tuple[int, int, int], size: tuple[int, ...]) -> tuple[slice, ...]:
        """The part of the region's context (``shape``, from ``context_origin``) an instance
        at ``origin`` of ``size`` measures on: its own box with the context's frames before
        and after and its spatial margin (the whole context for a one-piece region). Its cost
        and its background are its own, not the whole region's: a spark on a long wave or a
        brightness step is measured around itself."""
        box = tuple(slice(o - c, o - c + k) for o, c, k in zip(origin, context_origin, size,
                                                                 strict=True))
        return grown(box, self.context_low, self.context_high, shape)

    def _deblended(self, context: np.ndarray, partner: np.ndarray,
                   box: tuple[int, int]) -> np.ndarray:
        """``context`` less ``pair_split_deblend_fraction`` of the other half's fitted shape
        (a split pair's spark measured on its own signal, not on its neighbour's too)."""
        t = np.arange(context.shape[0], dtype=np.float64)[:, None, None] - box[0]
        x = np.arange(context.shape[2], dtype=np.float64)[None, None, :] - box[1]
        neighbour = self.config.pair_split_deblend_fraction * shape_values(partner, t, x)
        return (context - neighbour).astype(context.dtype)


class _SmoothedContext:
    """A region's ΔF/F0 context smoothed for peak finding (``peak_sigma_*``) and the noise SD
    of that, each computed once per region and only when a piece needs it; ``inner``: the
    region's box in the context."""

    def __init__(self, context: np.ndarray, inner: tuple[slice, ...], config: TrackerConfig,
                 dt_ms: float, pixel_um: float, linescan: bool) -> None:
        self.inner = inner
        self._context, self._linescan = context, linescan
        self._sigma_frames = config.peak_sigma_ms / dt_ms
        self._sigma_px = config.peak_sigma_um / pixel_um

    @cached_property
    def values(self) -> np.ndarray:
        return smooth_dff0(self._context, self._sigma_frames, self._sigma_px, self._linescan)

    @cached_property
    def noise_sd(self) -> float:
        return _smoothed_noise_sd(self.values, self.inner, self._sigma_frames)


def _placed(mask: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` (the pixels of ``box``) in a boolean array of ``shape``."""
    out = np.zeros(shape, bool)
    out[box] = mask
    return out


def _smoothed_noise_sd(smoothed: np.ndarray, inner: tuple[slice, ...],
                       sigma_frames: float) -> float:
    """Noise SD of the smoothed ΔF/F0 crop, from differences between samples far enough apart
    in time to be independent (1.4826 × MAD / √2), at the positions outside the region's
    bounding box (its own signal is not noise); NaN when there are too few."""
    lag = max(1, int(round(4 * sigma_frames)))
    if smoothed.shape[0] <= lag:
        return math.nan
    outside = np.ones(smoothed.shape, bool)
    outside[inner] = False
    diff = smoothed[lag:] - smoothed[:-lag]
    keep = outside[lag:] & outside[:-lag]
    values = diff[keep]
    if values.size < 20:
        return math.nan
    return float(1.4826 * np.median(np.abs(values - np.median(values))) / math.sqrt(2.0))


def pair_rules(cfg: TrackerConfig) -> tuple[PairRule, ...]:
    """The pair split's rules of a tracker configuration (``pair_split_*``; the second, for
    faint pairs, where ``pair_split_faint_min_peak_sd`` is set); none when the split is off."""
    if cfg.pair_split_min_gain_fraction is None:
        return ()
    rule = PairRule(cfg.pair_split_min_gain_fraction, cfg.pair_split_min_separation_um,
                    cfg.pair_split_min_peak_sd, cfg.pair_split_min_peak_ratio,
                    cfg.pair_split_min_excess_explained, cfg.pair_split_min_delay_ms,
                    math.inf if cfg.pair_split_max_width_ratio is None
                    else cfg.pair_split_max_width_ratio)
    if cfg.pair_split_faint_min_peak_sd is None:
        return (rule,)
    faint = PairRule(rule.min_gain_fraction, cfg.pair_split_faint_min_separation_um,
                     cfg.pair_split_faint_min_peak_sd, rule.min_peak_ratio,
                     cfg.pair_split_faint_min_excess_explained,
                     cfg.pair_split_faint_min_delay_ms, cfg.pair_split_faint_max_width_ratio)
    return (rule, faint)
