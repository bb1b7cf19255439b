"""One stream's analysis: raw frames → ΔF/F0 → detector → instances → characterized events.

:class:`StreamAnalyzer` chains the per-stream stages (preprocess → detector (windows → backend →
stitch) → :class:`~engine.postprocess.InstanceTracker` → characterize → cell vote). It is fed
frames in stream order by ``serve`` (from the ingest) and by ``analyze`` (from a file), the very
same way, so both give the same events. Sinks are not its business: it returns events, label
blocks and statistics, and :mod:`engine.pipeline` routes them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from acquisition.stream_kind import StreamKind

from . import honesty, spark_size
from .burst import BudgetLimits, CharacterizationBudget, default_budget
from .cellclass import CellClassifier, CellSummary, CellVote, classifier_trust
from .characterize import characterize, locate
from .detectors import Detector
from .events import Event
from .frame_ring import FrameRing
from .instances import Instance
from .kind_rules import KindRules
from .noise_map import NoiseMaps, RestingLevels
from .postprocess import InstanceTracker
from .preprocess import Preprocessor, check_finite
from .quality import QualityMonitor, SaturationBuffer
from .significance import (
    DEFAULT_MIN_SIGNIFICANCE,
    LOCAL_MIN_SIGNIFICANCE_KEY,
    RESTING_BASELINE_KEY,
    WAVE_MIN_SIGNIFICANCE_KEY,
    significances,
)
from .tails import TAIL_KEY, is_tail

log = logging.getLogger(__name__)

DELAY_SAMPLES = 2048
PREVIEW_LINES = 1024  # recent ΔF/F0 lines kept for the dashboard preview (line-scans)
PREVIEW_FRAMES = 1  # recent ΔF/F0 frames kept for the preview (movies: the latest)


@dataclass
class StreamInfo:
    """What the analysis needs to know about a stream (from the wire ``start`` or a file)."""

    stream: str
    stream_kind: StreamKind  # LINESCAN or MOVIE
    frame_shape: tuple[int, ...]
    pixel_um: float
    dt_ms: float
    blank: float | None = None
    cell: str = ""
    metadata: dict = field(default_factory=dict)
    dtype: str | None = None  # of the raw frames (gives the saturation level)
    saturation_counts: float | None = None  # overrides the dtype's maximum
    #: where pixel_um / dt_ms came from (see :mod:`engine.quality`)
    calibration_source: dict = field(default_factory=dict)


@dataclass
class AnalyzerStats:
    """Counters of one stream's analysis."""

    frames_in: int = 0
    frames_final: int = 0
    frames_filled: int = 0  # missing frames replaced by the last frame (transport gaps)
    gaps_filled: int = 0  # transport gaps filled (logged for the first 5, then every 1000th)
    frames_skipped: int = 0  # late/duplicate frames not re-analyzed (still recorded)
    events: int = 0
    delays_ms: deque = field(default_factory=lambda: deque(maxlen=DELAY_SAMPLES))

    def delay_percentiles(self) -> tuple[float, float]:
        """Compute delay p50 and p99 in ms (NaN before the first sample)."""
        if not self.delays_ms:
            return math.nan, math.nan
        p50, p99 = np.percentile(np.fromiter(self.delays_ms, float), [50, 99])
        return float(p50), float(p99)


class StreamAnalyzer:
    """All per-stream stages; see the module docstring.

    Parameters
    ----------
    info : StreamInfo
    detector : Detector
        A fresh detector for this stream (network or classical).
    classifier : CellClassifier, optional
        Yang et al. per-spark classifier for the running cell vote.
    keep_labels : bool
        Keep final instance-label frames for :meth:`pop_labels` (``analyze`` writes them).
    budget : BudgetLimits, optional
        Characterization budget (:mod:`engine.burst`); default per stream kind, scaled
        with the frame's extent (:func:`engine.burst.default_budget`).
    """

    def __init__(self, info: StreamInfo, detector: Detector,
                 classifier: CellClassifier | None = None, keep_labels: bool = False,
                 budget: BudgetLimits | None = None) -> None:
        self.info = info
        self.detector = detector
        self.stats = AnalyzerStats()
        limits = budget or default_budget(info.stream_kind, info.frame_shape, info.pixel_um)
        self.budget = CharacterizationBudget(limits, info.dt_ms, info.stream)
        self._pre = Preprocessor(info.frame_shape, info.dt_ms, blank=info.blank,
                                 dense_ops=detector.dense_ops, **detector.preprocess)
        #: the ΔF/F0 frames, read by the tracker (the frames it finalizes and their context)
        #: and the preview; frames are released once neither needs them (:meth:`_release_dff0`)
        self._dff0 = FrameRing(info.frame_shape, np.float32)
        self._preview_frames = PREVIEW_LINES if info.stream_kind.is_linescan else PREVIEW_FRAMES
        self.min_significance = float(detector.thresholds.get("min_significance",
                                                             DEFAULT_MIN_SIGNIFICANCE))
        #: an event named wave must reach this too (the model's ``wave_min_significance``)
        wave_floor = detector.thresholds.get(WAVE_MIN_SIGNIFICANCE_KEY)
        self._wave_min_significance = (self.min_significance if wave_floor is None
                                       else max(self.min_significance, float(wave_floor)))
        #: every event must reach this against its own pixels before it (None: not tested)
        self._local_min_significance = detector.thresholds.get(LOCAL_MIN_SIGNIFICANCE_KEY)
        #: a puff peaking this many frames before its start is not reported (:mod:`engine.tails`)
        self._tail_frames = detector.thresholds.get(TAIL_KEY)
        self._kind_rules = KindRules.for_stream(detector.thresholds,
                                                 info.stream_kind.is_linescan, info.dt_ms)
        #: a spark measured briefer or narrower than these is not reported (:mod:`engine.spark_size`)
        self._spark_floors = (detector.thresholds.get(spark_size.MIN_FDHM_KEY),
                              detector.thresholds.get(spark_size.MIN_FWHM_KEY))
        #: events under this significance are flagged ``imprecise`` (:mod:`engine.honesty`)
        self._precise_min_significance = detector.thresholds.get(honesty.PRECISE_KEY)
        self._tracker = InstanceTracker(info.frame_shape, info.pixel_um, info.dt_ms,
                                        thresholds=detector.thresholds,
                                        config=detector.tracker_config,
                                        keep_labels=keep_labels, accept=self._significant,
                                        dff0=self._dff0)
        self.quality = QualityMonitor(
            info.frame_shape, info.pixel_um, info.dt_ms,
            saturation_counts=honesty.saturation_level(info.dtype, info.saturation_counts)
            if info.dtype or info.saturation_counts is not None else None,
            calibration_source=dict(info.calibration_source),
            trained_range=detector.trained_range,
            network_calibration=detector.network_calibration,
            min_significance=self.min_significance,
            wave_min_significance=None if wave_floor is None else self._wave_min_significance,
            local_min_significance=self._local_min_significance,
            baseline_warmup_ms=self._pre.warmup_frames * info.dt_ms)
        self._saturation = SaturationBuffer(info.frame_shape)
        self._noise = NoiseMaps(info.frame_shape, info.dt_ms, dense_ops=detector.dense_ops)
        #: each pixel's resting ΔF/F0, taken off before the significance test where the model
        #: asks for it (:mod:`engine.significance`, step 0; None: not)
        self._resting = (RestingLevels(info.frame_shape, info.dt_ms, dense_ops=detector.dense_ops)
                         if detector.thresholds.get(RESTING_BASELINE_KEY) else None)
        self._vote = (CellVote(classifier, self.min_significance)
                      if classifier is not None else None)
        self._last_raw: np.ndarray | None = None
        self._next_frame = 0
        #: chunks whose completed frames are not delivered yet: (detector.n_submitted after
        #: the chunk, its arrival time); see :meth:`_record_delays`
        self._arrivals: deque[tuple[int, float]] = deque()

    @property
    def lookahead_ms(self) -> float:
        """Built-in look-ahead of the detector (worst case), in ms."""
        return self.detector.lookahead_frames * self.info.dt_ms

    @property
    def blank(self) -> float | None:
        """The offset in use (given, or estimated once warmed up: :mod:`engine.blank`)."""
        return self._pre.blank

    @property
    def baseline(self) -> np.ndarray | None:
        """The current baseline F0 image (blank-subtracted counts), once warmed up."""
        return self._pre.baseline

    @property
    def cell_summary(self) -> CellSummary | None:
        """The cell vote so far, its confidence shrunk for what the recording cannot support."""
        if self._vote is None:
            return None
        self._vote.set_trust(*classifier_trust(self.info.stream_kind, self.quality_report()))
        return self._vote.summary()

    def new_cell_vote(self) -> CellVote | None:
        """An empty vote with this stream's classifier, threshold and current trust (the
        per-cell votes when its events are attributed to several cells); None without one."""
        if self._vote is None:
            return None
        vote = CellVote(self._vote.classifier, self.min_significance)
        vote.set_trust(*classifier_trust(self.info.stream_kind, self.quality_report()))
        return vote

    def push(self, first: int, frames: np.ndarray, t_arrival: float | None = None) -> list[Event]:
        """Analyze frames ``first .. first+n-1``; returns the events that closed meanwhile.

        Frames must come in order; a gap (frames lost in transport) is filled with the last
        frame and counted, overlap with frames already analyzed is skipped and counted.
        """
        t_arrival = time.perf_counter() if t_arrival is None else t_arrival
        check_finite(first, np.asarray(frames))
        frames = self._in_order(first, np.asarray(frames))
        if frames.shape[0] == 0:
            return []
        first = self._next_frame
        self._next_frame += frames.shape[0]
        self._last_raw = frames[-1]
        saturated = self.quality.observe(first, frames)
        self._saturation.add(first, saturated, frames.shape[0])
        self._noise.add(first, frames)
        d_first, dff0 = self._pre.push(frames)
        self.quality.observe_baseline(self._pre.baseline)
        self.quality.observe_blank(self._pre.blank_report)
        return self._after_preprocess(d_first, dff0, t_arrival)

    def finish(self) -> list[Event]:
        """End of stream: flush every stage and return the remaining events."""
        t0 = time.perf_counter()
        self.quality.ended = True
        d_first, dff0 = self._pre.flush()
        self.quality.observe_blank(self._pre.blank_report)
        events = self._after_preprocess(d_first, dff0, t0)
        events += self._to_events(self._finalize(self.detector.flush()) + self._tracker.flush())
        self._record_delays(time.perf_counter())
        return events

    def close(self) -> None:
        """Release the analysis (``serve`` calls it when a stream ends or fails): nothing to
        release in this process; an analyzer in an analysis process
        (:class:`engine.serve_remote.RemoteAnalyzer`) is dropped there."""

    @property
    def has_ready(self) -> bool:
        """Blocks finalized by a cross-stream batcher wait for :meth:`collect`."""
        return self.detector.has_ready

    def collect(self) -> list[Event]:
        """Post-process blocks a cross-stream batcher finalized since the last call.

        ``serve`` calls it after :meth:`~engine.batching.WindowBatcher.poll`; ``push`` and
        ``finish`` also take such blocks, so nothing is processed twice or out of order.
        """
        if not self.has_ready:
            return []
        events = self._to_events(self._finalize(self.detector.take_ready()))
        self._record_delays(time.perf_counter())
        return events

    def recent_dff0(self) -> tuple[int, np.ndarray] | None:
        """The latest preprocessed frames ``(first, dff0)`` (for display only): the last
        :data:`PREVIEW_LINES` lines of a line-scan, the last frame of a movie (fewer before
        there are that many); a copy. None before the first preprocessed frame."""
        stop = self._dff0.stop
        if stop == 0:
            return None
        first = max(0, stop - self._preview_frames)
        return first, self._dff0.read(first, stop).copy()

    @property
    def dff0_frames_held(self) -> int:
        """ΔF/F0 frames held now: those not final yet, the tracker's open regions and their
        context, and the preview's latest frames (bounded, however long the stream)."""
        return len(self._dff0)

    def pop_labels(self) -> tuple[int, np.ndarray] | None:
        """Final instance-label frames ``(first, labels)`` (ids = event ids), if any."""
        return self._tracker.pop_final_labels()

    # -- internals -----------------------------------------------------------------------------
    def _in_order(self, first: int, frames: np.ndarray) -> np.ndarray:
        expected = self._next_frame
        if first < expected:
            skip = min(expected - first, frames.shape[0])
            self.stats.frames_skipped += skip
            frames, first = frames[skip:], first + skip
        self.stats.frames_in += frames.shape[0]
        if first > expected and frames.shape[0]:
            n_missing = first - expected
            last = self._last_raw if self._last_raw is not None else frames[0]
            self.stats.frames_filled += n_missing
            self.stats.gaps_filled += 1
            if self.stats.gaps_filled <= 5 or self.stats.gaps_filled % 1000 == 0:  # bounded log
                log.warning("stream %s: %d frames missing before %d; filled with the last frame "
                            "(gap %d, %d frames so far)", self.info.stream, n_missing, first,
                            self.stats.gaps_filled, self.stats.frames_filled)
            frames = np.concatenate([np.repeat(last[None], n_missing, axis=0), frames])
        return frames

    def _after_preprocess(self, d_first: int, dff0: np.ndarray, t_arrival: float) -> list[Event]:
        if dff0.shape[0] == 0:
            return []
        self._dff0.append(d_first, dff0)
        if self._resting is not None:
            self._resting.add(d_first, dff0)
        self._release_dff0()
        submitted_before = self.detector.n_submitted
        events = self._to_events(self._finalize(self.detector.push(d_first, dff0)))
        if self.detector.n_submitted > submitted_before:
            self._arrivals.append((self.detector.n_submitted, t_arrival))
        self._record_delays(time.perf_counter())
        return events

    def _record_delays(self, now: float) -> None:
        """Compute delay, one path for every detector: a chunk that completed frames (advanced
        the detector's ``n_submitted``) is timed from its arrival (``t_arrival``: at the ingest,
        so queue time counts) to the post-processing of those frames, which is now once the
        detector has delivered them (at once, or when a cross-stream batch ran). Each chunk is
        counted once; a chunk that completed no frame is not a sample."""
        delivered = self.detector.n_delivered
        while self._arrivals and self._arrivals[0][0] <= delivered:
            self.stats.delays_ms.append(1e3 * (now - self._arrivals.popleft()[1]))

    def _release_dff0(self) -> None:
        """Forget the ΔF/F0 frames neither the tracker (frames not final yet, open regions and
        their context) nor the preview (the latest frames) needs any more."""
        self._dff0.release(min(self._tracker.needed_from,
                               self._dff0.stop - self._preview_frames))

    def _finalize(self, blocks) -> list:
        instances = []
        for block in blocks:
            saturated = self._saturation.take(block.first, block.stop)
            instances += self._tracker.push(block.first, block.probs, saturated=saturated)
            self.stats.frames_final = block.stop
        if blocks:
            self._release_dff0()
        return instances

    def _significant(self, instance: Instance) -> bool:
        """The tracker's ``accept`` check: significance at or above ``min_significance``
        (a wave: at or above ``wave_min_significance`` too, where the model sets one; an event
        whose significance cannot be computed is kept, and flagged), and, where the model sets
        ``local_min_significance``, that far above its own pixels before it (NaN: kept). Beyond the
        characterization budget a candidate is kept untested (:mod:`engine.burst`)."""
        if not self.budget.take(instance.sort_key[0] if instance.sort_key else instance.t_end):
            instance.over_budget = True
            return True
        local_floor = self._local_min_significance
        instance.significance, local = significances(
            instance, self.info.pixel_um, self.info.dt_ms, instance.saturated,
            self._noise.dff0_map_before(instance.t_start, self._pre.blank),
            local=local_floor is not None,
            resting=None if self._resting is None else self._resting.map_before(instance.t_start))
        floor = self._wave_min_significance if instance.kind == "wave" else self.min_significance
        if instance.min_significance is not None:
            floor = max(floor, instance.min_significance)
        if instance.significance < floor or (local_floor is not None and local < local_floor):
            return False
        return (not self._tail(instance) and self._rises(instance)
                and not self._too_small(instance))

    def _rises(self, instance: Instance) -> bool:
        """Whether the event's own time course, at its peak position, rises above the baseline
        before it: characterization finds a peak (a finite ``amplitude_dff0``). A candidate
        whose does not -- a step, a drift, the decay of what came before -- is no transient,
        however far its ΔF/F0 stands from the noise; it is not reported, and counted
        (``events.rejected_no_rise``)."""
        rises = math.isfinite(self._characterized(instance)["amplitude_dff0"])
        self.quality.events.rejected_no_rise += not rises
        return rises

    def _too_small(self, instance: Instance) -> bool:
        """A spark briefer or narrower than the model's floors (:mod:`engine.spark_size`)."""
        small = spark_size.rejects(self._characterized(instance), instance, self.info.pixel_um,
                                   self.info.dt_ms, self._kind_rules, self._spark_floors)
        self.quality.events.rejected_too_small += small
        return small

    def _tail(self, instance: Instance) -> bool:
        """Whether ``instance`` is a puff peaking before its own start (:mod:`engine.tails`;
        its characterization is kept for :meth:`_event`)."""
        if self._tail_frames is None or instance.kind != "puff":
            return False
        tail = is_tail(self._characterized(instance), instance, self.info.dt_ms,
                       self._tail_frames)
        self.quality.events.rejected_tail += tail
        return tail

    def _characterized(self, instance: Instance) -> dict:
        """``instance``'s characterization, computed once and kept on it (the accept check's
        rules and :meth:`_event` read the same one)."""
        if instance.characterized is None:
            instance.characterized = self._characterize(instance)
        return instance.characterized

    def _characterize(self, instance: Instance) -> dict:
        return characterize(instance, self.info.pixel_um, self.info.dt_ms,
                            self.detector.characterize_config)

    def _event(self, instance: Instance) -> Event:
        """Characterize, empty what cannot be trusted (:mod:`engine.honesty`), then let the
        time course settle spark against puff (:mod:`engine.kind_rules`)."""
        info = self.info
        if instance.over_budget:
            fields = locate(instance, info.pixel_um, info.dt_ms)
        else:
            fields = self._characterized(instance)
        honesty.apply(fields, instance, info.pixel_um, info.dt_ms,
                      self._precise_min_significance)
        self._kind_rules.apply(fields)
        self.quality.count_event(fields["flags"], honesty.measured(fields))
        return Event(event_id=instance.event_id, stream=info.stream, cell=info.cell, **fields)

    def quality_report(self) -> dict:
        """The recording's quality report so far (:mod:`engine.quality`)."""
        events = self.quality.events
        events.rejected_not_significant = (self._tracker.n_rejected - events.rejected_tail
                                           - events.rejected_no_rise - events.rejected_too_small)
        self.quality.events.not_characterized_burst = self.budget.n_over
        return self.quality.report()

    def _to_events(self, instances) -> list[Event]:
        events = [self._event(inst) for inst in instances]
        events.sort(key=lambda e: e.event_id)
        if self._vote is not None:
            for event in events:
                self._vote.add(event)
        self.stats.events += len(events)
        return events
