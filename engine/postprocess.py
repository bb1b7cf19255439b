"""Incremental post-processing: per-pixel probabilities of finalized frames → event instances.

This is Dotti et al. (2024) post-processing made streaming (DESIGN.md "Streaming, latency and
equivalence"):

1. foreground = 1 − P(background) ≥ ``thresholds["foreground"]`` (tuned offline; no whole-movie
   Otsu), computed pixel by pixel, so it cannot depend on how frames were split into blocks;
2. temporal gaps of ≤ ``gap_ms`` (in frames: ``gap_frames``) of background at the same pixel
   are bridged and the result is labelled into connected *regions* (full 3×3(×3) connectivity);
3. a region is *closed* once ``close_after`` frames have been received after its last frame, where
   ``close_after = max(gap_frames + 1, context_after)`` — nothing later can connect to it, and the
   ΔF/F0 context needed for characterization is in the buffer;
4. a closed region becomes instances (:mod:`engine.region_instances`, with the helpers of
   :mod:`engine.instances`): majority class (confident minority-class parts that pass their
   size filter split off), sparks split by peaks + watershed, size filters; an optional
   hysteresis ``thresholds["seed"]`` drops regions whose highest foreground probability stays
   below it (used by the classical detector).

Event ids are assigned in the order (closing frame, t_start, y, x, ...) where the *closing frame*
``t_last + close_after + 1`` is a property of the region, not of the blocks: the same recording
gives the same ids whatever the block sizes (tested). Only the frames of open regions plus the
context are buffered, so memory is bounded by the longest open event. They are held in
:class:`~engine.frame_ring.FrameRing` objects keyed by absolute frame index; the ΔF/F0 ring may
be the caller's (the analyzer's, which the preview also reads), so those frames are held once.
Each push fills gaps and labels only the bounding box of the pixels not yet in a closed region
(the open regions and the new frames' foreground), not every held frame; a region that stays
open is labelled again on every push until it closes. A region lasting longer than
``TrackerConfig.max_event_ms`` is cut that long after its start (once the context after the
cut has arrived, or at the end of the stream), closed or not: its frames before the cut become
instances flagged ``truncated``, the rest goes on as a new region, whose instances are flagged
too (they are the same event's rest). So frames held and work per
push stay bounded when a region never closes, and the cut frame depends only on the region's
start, not on the blocks (for regions that do not merge with another one later).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage

from acquisition.stream_kind import StreamKind
from engine.boxes import grown, padded_box
from engine.frame_ring import FrameRing
from engine.instances import (
    CONNECTIVITY,
    EVENT_CLASSES,
    Instance,
    TrackerConfig,
    fill_temporal_gaps,
    frames_of,
)
from engine.region_instances import ClosedRegion, RegionInstances

log = logging.getLogger(__name__)


class InstanceTracker:
    """Streaming instance segmentation, fed once per finalized block of frames.

    Parameters
    ----------
    frame_shape : tuple of int
        ``(X,)`` for a line-scan, ``(Y, X)`` for a movie.
    pixel_um, dt_ms : float
        Calibration.
    thresholds : dict, optional
        ``foreground`` (default 0.5) and optional ``seed`` (hysteresis: a region is kept only if
        its maximum foreground probability reaches it).
    config : TrackerConfig, optional
        The detector's ``tracker_config`` (a model directory's ``postprocess.json``); default:
        the code's (Dotti et al.).
    keep_labels : bool
        Keep label frames for :meth:`pop_final_labels` (disable when nobody pops them).
    accept : callable, optional
        ``accept(instance) -> bool``, asked for every instance before it gets an id (e.g. the
        significance test); rejected instances get no id and no label, and are counted in
        :attr:`n_rejected`.
    dff0 : FrameRing, optional
        The stream's ΔF/F0 frames (``frame_shape``, from frame 0), shared with the caller: the
        caller appends every frame before pushing its probabilities (``push`` then takes no
        ``dff0``) and releases no frame from :attr:`needed_from` on. Without it the tracker
        keeps the ΔF/F0 given to ``push`` in a ring of its own.
    """

    def __init__(
        self,
        frame_shape: tuple[int, ...],
        pixel_um: float,
        dt_ms: float,
        thresholds: dict | None = None,
        config: TrackerConfig | None = None,
        keep_labels: bool = True,
        accept: Callable[[Instance], bool] | None = None,
        dff0: FrameRing | None = None,
    ) -> None:
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.stream_kind = StreamKind.from_item_shape(self.frame_shape)
        self._shape3 = (1, *self.frame_shape) if self.stream_kind.is_linescan else self.frame_shape
        self.pixel_um, self.dt_ms = float(pixel_um), float(dt_ms)
        thresholds = dict(thresholds or {})
        self.fg_threshold = float(thresholds.get("foreground", 0.5))
        self.seed_threshold = float(thresholds.get("seed", self.fg_threshold))
        self.config = config or TrackerConfig()
        self._regions = RegionInstances(self.stream_kind, pixel_um, dt_ms, self.config,
                                        self.seed_threshold)
        self._ctx_before = self._regions.context_low[0]
        self._ctx_after = self._regions.context_high[0]
        self.gap_frames = self._regions.gap_frames
        self.close_after = max(self.gap_frames + 1, self._ctx_after)
        self._max_frames = max(1, frames_of(self.config.max_event_ms, dt_ms))
        self._keep_labels = keep_labels
        # frames [needed_from, next_frame) of open regions and their context, per pixel:
        self._fg = FrameRing(self._shape3, bool)
        self._consumed = FrameRing(self._shape3, bool)  # already part of a closed region
        self._continues = FrameRing(self._shape3, bool)  # first frame after a cut region
        self._fg_prob = FrameRing(self._shape3, np.float32)
        self._class_probs = FrameRing((3, *self._shape3), np.float32)
        self._saturated: FrameRing | None = None  # created at the first saturated pixel
        self._own_dff0 = dff0 is None
        self._dff0 = FrameRing(self.frame_shape, np.float32) if dff0 is None else dff0
        if self._dff0.frame_shape != self.frame_shape:
            raise ValueError(f"ΔF/F0 ring of frames {self._dff0.frame_shape}, "
                             f"tracker of frames {self.frame_shape}")
        self._labels = FrameRing(self._shape3, np.int32)  # from the first label frame not popped
        self._labels_final = 0
        self._next_id = 1
        self._accept = accept
        self.n_rejected = 0

    # -- public API ---------------------------------------------------------------------------
    @property
    def next_frame(self) -> int:
        """Absolute index of the next frame :meth:`push` expects."""
        return self._end

    @property
    def needed_from(self) -> int:
        """Absolute index of the oldest frame the tracker may still read (its ΔF/F0 too)."""
        return self._first

    @property
    def buffered_frames(self) -> int:
        """Frames currently held (open regions plus context)."""
        return len(self._fg)

    @property
    def _first(self) -> int:
        return self._fg.first

    @property
    def _end(self) -> int:
        return self._fg.stop

    def push(self, first: int, probs: np.ndarray, dff0: np.ndarray | None = None,
             saturated: np.ndarray | None = None) -> list[Instance]:
        """Add finalized frames ``first .. first+n-1``; return the instances that just closed.

        ``probs`` is ``(n, 4, *frame_shape)`` in class order (bg, spark, wave, puff); ``dff0`` is
        ``(n, *frame_shape)`` (None when the ΔF/F0 ring is shared: the frames are in it);
        ``saturated`` (bool, like ``dff0``) marks saturated pixels.
        """
        if first != self._end:
            raise ValueError(f"frames must arrive in order: expected {self._end}, got {first}")
        n = probs.shape[0]
        if self._own_dff0 == (dff0 is None):
            raise ValueError("push takes ΔF/F0 exactly when the tracker keeps its own ring")
        if self._own_dff0:
            self._dff0.append(first, np.asarray(dff0).reshape(n, *self.frame_shape))
        probs = np.asarray(probs, dtype=np.float32).reshape(n, 4, *self._shape3)
        fg_prob = 1.0 - probs[:, 0]
        channels = list(EVENT_CLASSES)  # probability channel = class id
        self._push_saturated(first, n, saturated)
        self._fg.append(first, fg_prob >= self.fg_threshold)
        self._consumed.append(first, np.zeros_like(fg_prob, dtype=bool))
        self._continues.append(first, np.zeros_like(fg_prob, dtype=bool))
        self._fg_prob.append(first, fg_prob)
        self._class_probs.append(first, probs[:, channels])
        if self._keep_labels:
            self._labels.append(first, np.zeros(fg_prob.shape, np.int32))
        return self._collect(final=False)

    def flush(self) -> list[Instance]:
        """End of stream: close every open region and return its instances."""
        return self._collect(final=True)

    def pop_final_labels(self) -> tuple[int, np.ndarray] | None:
        """Label frames that no open region can change any more, as ``(first, labels)``.

        ``labels`` is ``(n, *frame_shape)`` int32 with 0 = background and id = ``event_id``.
        Returns None when no new frame is final.
        """
        first = self._labels.first
        n = self._labels_final - first
        if n <= 0 or not self._keep_labels:
            return None
        out = self._labels.read(first, self._labels_final).reshape(n, *self.frame_shape).copy()
        self._labels.release(self._labels_final)
        return first, out

    # -- internals ----------------------------------------------------------------------------
    def _collect(self, final: bool) -> list[Instance]:
        consumed = self._consumed.held()
        instances: list[Instance] = []
        cut = True
        while cut:  # a long block may hold more than one cut of a never-closing region
            cut, open_starts = False, []
            for slices, pixels in active_regions(self._fg.held() & ~consumed, self.gap_frames):
                t_start = self._first + slices[0].start
                t_last = self._first + slices[0].stop - 1
                cut_at = t_start + self._max_frames  # whether the region is closed or not
                if t_last >= cut_at and (final or cut_at + self.close_after <= self._end):
                    instances += self._cut(slices, pixels, cut_at, consumed)
                    cut = True
                elif final or t_last + self.close_after < self._end:
                    consumed[slices] |= pixels
                    closed = self._region_instances(pixels, slices, t_last + self.close_after + 1)
                    if self._continues.held()[slices][pixels].any():  # the rest of a cut one
                        for inst in closed:
                            inst.truncated = True
                    instances += closed
                else:
                    open_starts.append(t_start)
        instances.sort(key=lambda inst: inst.sort_key)
        if self._accept is not None:
            accepted = [inst for inst in instances if self._accept(inst)]
            self.n_rejected += len(instances) - len(accepted)
            instances = accepted
        for inst in instances:
            self._assign_id(inst)
        self._drop_settled(open_starts, final)
        return instances

    def _cut(self, slices: tuple[slice, ...], pixels: np.ndarray, cut: int,
             consumed: np.ndarray) -> list[Instance]:
        """Close the frames of a region before absolute frame ``cut`` as instances flagged
        ``truncated``; its later frames stay active."""
        stop = cut - self._first
        head = (slice(slices[0].start, stop), *slices[1:])
        piece = pixels[: stop - slices[0].start]
        consumed[head] |= piece
        if stop < slices[0].stop:  # what follows the cut is the same event's rest
            self._continues.held()[(stop, *slices[1:])] |= pixels[stop - slices[0].start]
        instances = self._region_instances(piece, head, cut + self.close_after)
        for inst in instances:
            inst.truncated = True
        return instances

    def _region_instances(
        self, pixels: np.ndarray, slices: tuple[slice, ...], closing_frame: int
    ) -> list[Instance]:
        """The instances of a closed region (``pixels`` in the box ``slices`` of the held
        frames) by :class:`~engine.region_instances.RegionInstances`, each with the saturated
        pixels of its ΔF/F0 context."""
        context, context_start = self._context(slices)
        probs = self._class_probs.held()[slices[0], :, slices[1], slices[2]]
        region = ClosedRegion(pixels, slices, self._first, self._fg_prob.held()[slices],
                              probs.transpose(1, 0, 2, 3), context, context_start, closing_frame)
        instances = self._regions.instances(region)
        for inst in instances:
            inst.saturated = self._saturated_crop(inst)
        return instances

    def _push_saturated(self, first: int, n: int, saturated: np.ndarray | None) -> None:
        """Append the saturation of frames ``first .. first+n-1`` (kept once a stream has
        saturated; the frames held from before count as unsaturated)."""
        if self._saturated is None and saturated is not None and np.any(saturated):
            self._saturated = FrameRing(self._shape3, bool, self._first)
            self._saturated.append(self._first, np.zeros((first - self._first, *self._shape3)))
        if self._saturated is None:
            return
        block = (np.zeros((n, *self._shape3), bool) if saturated is None
                 else np.asarray(saturated, bool).reshape(n, *self._shape3))
        self._saturated.append(first, block)

    def _saturated_crop(self, inst: Instance) -> np.ndarray | None:
        """Saturated pixels under ``inst``'s ΔF/F0 crop (None when there are none)."""
        if self._saturated is None:
            return None
        t0, y0, x0 = inst.dff0_origin
        t, height, width = inst.dff0.shape
        frames = self._saturated.read(t0, t0 + t).reshape(-1, *self._shape3)
        crop = frames[:, y0:y0 + height, x0:x0 + width].copy()
        return crop if crop.any() else None

    def _context(self, slices: tuple[slice, ...], source: np.ndarray | None = None
                 ) -> tuple[np.ndarray, tuple[int, int, int]]:
        """ΔF/F0 (or ``source``, held frames) around a region (context frames, spatial margin)
        and its start relative to the held frames."""
        if source is None:
            source = self._dff0.read(self._first, self._end).reshape(-1, *self._shape3)
        box = grown(slices, self._regions.context_low, self._regions.context_high,
                    (self.buffered_frames, *self._shape3))
        return source[box].copy(), tuple(b.start for b in box)

    def _assign_id(self, inst: Instance) -> None:
        inst.event_id = self._next_id
        self._next_id += 1
        if not self._keep_labels:
            return
        t, y, x = inst.origin
        frames = self._labels.read(t, t + inst.mask.shape[0])
        frames[:, y:y + inst.mask.shape[1], x:x + inst.mask.shape[2]][inst.mask] = inst.event_id

    def _drop_settled(self, open_starts: list[int], final: bool) -> None:
        """Forget frames no open region (nor its context) needs; mark final label frames."""
        settled = self._end if final or not open_starts else min(open_starts)
        self._labels_final = settled
        keep_from = max(self._first, settled - self._ctx_before)
        rings = [self._fg, self._consumed, self._continues, self._fg_prob, self._class_probs,
                 self._saturated]
        for ring in rings + [self._dff0 if self._own_dff0 else None]:
            if ring is not None:
                ring.release(keep_from)


def active_regions(active: np.ndarray,
                   gap_frames: int) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Regions of ``active`` ``(T, Y, X)``: temporal gaps of ≤ ``gap_frames`` filled, then
    connected components, as (bounding box, the region's active pixels in it), in label order.

    Gaps are filled only between two active frames of a pixel, and components hold only
    filled pixels, so both are computed on the bounding box of the active pixels alone (the
    frames of closed regions and of context, and the empty columns, cost nothing): the same
    regions in the same (raster) order as on the whole array.
    """
    box = padded_box(active, (0,) * active.ndim)
    if box is None:
        return
    crop = active[box]
    regions, _ = ndimage.label(fill_temporal_gaps(crop, gap_frames), structure=CONNECTIVITY)
    for label, inner in enumerate(ndimage.find_objects(regions), start=1):
        if inner is not None:
            slices = tuple(slice(b.start + s.start, b.start + s.stop)
                           for b, s in zip(box, inner, strict=True))
            yield slices, (regions[inner] == label) & crop[inner]
