"""Per-recording quality report: can this recording's events be trusted, and how far?

:class:`QualityMonitor` watches one stream as it is analyzed (raw frames and the baseline F0,
never the whole recording at once: memory is bounded) and :meth:`QualityMonitor.report` gives
the report that goes to ``summary.json``, the store and the dashboard:

* ``resting_snr`` — median over the cell's pixels of F0 / σ, where F0 is the baseline
  (blank-subtracted counts) and σ the pixel's temporal noise SD, from up to
  :data:`NOISE_SAMPLES` differences of consecutive frames spread over the recording
  (σ = 1.4826 × median |ΔF| / √2: events and drift barely move it). Cell pixels: F0 above
  0.3 × its 95th percentile.
* ``detection_limit_dff0`` — the peak ΔF/F0 a typical spark needs to reach the significance
  floor at this resting SNR and sampling (:mod:`engine.detection_limit`); fainter sparks are
  likely missed, and above :data:`~engine.detection_limit.LIMIT_WARNING_DFF0` a warning says
  so.
* ``saturated_fraction`` — pixels at or above the detector's saturation level (dtype maximum
  unless given), over all frames; ``saturated_fraction_in_cell`` over the cell's pixels.
* ``bleaching_fraction`` — 1 − (median cell F0 now) / (median cell F0 at the start).
* ``calibration`` — pixel size and interval, where they came from (``metadata``, ``flag``
  when the file records none, ``flag_over_metadata``, ``wire``), and whether they lie in the
  range the model was trained on.
* ``events`` — reported, rejected as not significant (below ``min_significance``, or a
  model's ``wave_min_significance`` / ``local_min_significance``, also reported), rejected
  as tails of earlier events (:mod:`engine.tails`) or for not rising above the baseline
  before them (``rejected_no_rise``: a step or drift, no transient), sparks measured briefer
  or narrower than a spark (``rejected_too_small``, :mod:`engine.spark_size`), with
  saturated pixels, reported uncharacterized in a burst (:mod:`engine.burst`), the
  fraction with all five parameters measured and the fraction with each one measured
  (``measured_fraction_by_parameter``: a movie at 6.8 ms/frame resolves few rise times, so
  few events have all five while most have the other four), and how many have a rise time and how many
  had one under two samples (when two samples last longer than a spark's typical rise, the
  reported rise times are warned about), and pieces of regions cut as ``truncated``.
* ``blank`` — the offset subtracted (counts) and where it came from: ``given``, or estimated
  from ``dark_pixels``, the ``photon_transfer`` or, failing both, the ``darkest_pixels``
  (:mod:`engine.blank`; the last two are warned about).
* ``warnings`` — one line each, also logged once per recording.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from .blank import blank_warning
from .detection_limit import LIMIT_WARNING_DFF0, detection_limit_dff0
from .frame_ring import FrameRing
from .honesty import IMPRECISE_FLAG, PARAMETERS, TRUNCATED_FLAG

log = logging.getLogger(__name__)

QUALITY_SCHEMA_VERSION = 4  # 2: the blank and its source; 3: measured fraction by parameter;
# 4: recorded_ms, baseline_warmup_ms, ended and still_pixels (too short, or no noise)
NOISE_SAMPLES = 64
CELL_F0_FRACTION = 0.3
_MAD_TO_SD = 1.4826
#: warning levels
SATURATION_WARNING = 0.001
LOW_SNR_WARNING = 2.0
BLEACHING_WARNING = 0.5
#: bleaching faster than this (fraction per s) is warned about: the baseline lags it
BLEACHING_RATE_WARNING_PER_S = 0.05
#: a spark's rise (10 % → peak) is ~10 ms (release ~5-20 ms; Cheng & Lederer 2008); when two
#: samples are longer, rise times are at the sampling's resolution and reported ones are warned
#: about (on the simulator's test movies at 6.8 ms/frame, 199 of 238 reported rises belonged to
#: sparks whose true rise is under two frames: docs/RESULTS.md "Why movie rise errors stay large").
#: Warnings carry no counts that grow with every event: ``serve`` logs each new text once
TYPICAL_SPARK_RISE_MS = 10.0


def calibration_check(pixel_um: float, dt_ms: float, trained_range: dict | None) -> dict:
    """Calibration against a model's trained range: ``{"in_range", "outside": [...]}``."""
    if not trained_range:
        return {"trained_range": None, "in_range": None, "outside": []}
    outside = []
    for key, value in (("pixel_um", pixel_um), ("dt_ms", dt_ms)):
        lo, hi = trained_range.get(key, (-math.inf, math.inf))
        if not lo <= value <= hi:
            outside.append(key)
    return {"trained_range": trained_range, "in_range": not outside, "outside": outside}


@dataclass
class EventCounts:
    """Events seen by the quality report."""

    reported: int = 0
    rejected_not_significant: int = 0
    rejected_tail: int = 0  # puffs peaking before their own start (engine.tails)
    rejected_no_rise: int = 0  # no peak above the baseline before them (StreamAnalyzer._rises)
    rejected_too_small: int = 0  # sparks briefer or narrower than a spark (engine.spark_size)
    saturated: int = 0
    measurable: int = 0
    not_characterized_burst: int = 0  # reported beyond the budget of engine.burst
    rise_reported: int = 0  # with a rise time
    rise_under_2_samples: int = 0  # rise emptied as under two lines or frames
    truncated: int = 0  # pieces of a region cut at TrackerConfig.max_event_ms
    imprecise: int = 0  # under the model's precise_min_significance (engine.honesty)
    #: events with each parameter measured (engine.honesty.PARAMETERS)
    measured: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARAMETERS, 0))


@dataclass
class QualityMonitor:
    """Streaming quality figures of one recording (see the module docstring).

    Parameters
    ----------
    frame_shape : shape of one line or frame.
    pixel_um, dt_ms : calibration.
    saturation_counts : raw level at which the detector saturates (None: not known).
    calibration_source : ``{"pixel_um": "metadata" | "flag" | "wire" | None, "dt_ms": ...}``.
    trained_range : ``{"pixel_um": [lo, hi], "dt_ms": [lo, hi]}`` of the model, or None.
    network_calibration : ``{"pixel_um", "dt_ms"}`` the network sees the stream at when it is
        resampled into that range (:mod:`engine.network_scale`), or None.
    min_significance : the threshold events had to pass (reported with the counts).
    wave_min_significance, local_min_significance : the model's further floors (events named
        wave; every event against its own pixels before it), None where the model sets none.
    """

    frame_shape: tuple[int, ...]
    pixel_um: float
    dt_ms: float
    saturation_counts: float | None = None
    calibration_source: dict = field(default_factory=dict)
    trained_range: dict | None = None
    network_calibration: dict | None = None
    min_significance: float = math.nan
    wave_min_significance: float | None = None
    local_min_significance: float | None = None
    #: the baseline F0's warm-up (:class:`engine.preprocess.Preprocessor`): a shorter
    #: recording takes its F0 from its own events' frames
    baseline_warmup_ms: float | None = None
    #: the stream has ended (a live stream is short only until its warm-up has passed)
    ended: bool = False
    events: EventCounts = field(default_factory=EventCounts)
    _n_values: int = 0
    _n_saturated: int = 0
    _saturated_pixels: np.ndarray | None = None
    _diffs: list = field(default_factory=list)
    _stride: int = 1
    _next_index: int = 0
    _last_frame: np.ndarray | None = None
    _f0_start: float = math.nan
    _f0_now: float = math.nan
    _f0_latest: np.ndarray | None = None
    _cell: np.ndarray | None = None
    _warned: set = field(default_factory=set)
    _blank: dict | None = None

    def observe(self, first: int, frames: np.ndarray) -> np.ndarray | None:
        """Count saturation and sample noise in raw frames ``first ..``; returns their
        saturated pixels (bool, like ``frames``), or None when the level is unknown."""
        frames = np.asarray(frames)
        self._sample_noise(first, frames)
        self._n_values += frames.size
        if self.saturation_counts is None:
            return None
        saturated = frames >= self.saturation_counts
        count = int(saturated.sum())
        if count:
            self._n_saturated += count
            per_pixel = saturated.sum(axis=0)
            self._saturated_pixels = (per_pixel if self._saturated_pixels is None
                                      else self._saturated_pixels + per_pixel)
        return saturated

    def observe_baseline(self, f0: np.ndarray | None) -> None:
        """The analyzer's current baseline F0 (blank-subtracted counts)."""
        if f0 is None:
            return
        f0 = np.asarray(f0, np.float64)
        if self._cell is None:
            self._cell = f0 > CELL_F0_FRACTION * np.percentile(f0, 95)
            self._f0_start = float(np.median(f0[self._cell]))
        self._f0_now = float(np.median(f0[self._cell]))
        self._f0_latest = f0

    def observe_blank(self, blank: dict | None) -> None:
        """The offset in use, where it came from and how uncertain it leaves F0
        (:meth:`engine.blank.BlankEstimate.report`), once known."""
        if blank is not None:
            self._blank = dict(blank)

    def count_event(self, flags: str, measured: tuple[str, ...] = ()) -> None:
        """One reported event: its ``flags`` and the names of the parameters it has
        (:func:`engine.honesty.measured`)."""
        tokens = flags.split(";")
        for name in measured:
            self.events.measured[name] += 1
        self.events.reported += 1
        self.events.saturated += "saturated" in tokens
        self.events.measurable += len(set(measured)) == len(PARAMETERS)
        self.events.rise_reported += "rise_ms" in measured
        self.events.rise_under_2_samples += "rise_ms<2samples" in tokens
        self.events.truncated += TRUNCATED_FLAG in tokens
        self.events.imprecise += IMPRECISE_FLAG in tokens

    def report(self) -> dict:
        """The quality report (JSON-ready; NaN where not measured yet)."""
        noise = self._noise_sd()
        snr = self._resting_snr(noise)
        saturated = self._n_saturated / self._n_values if self._n_values else math.nan
        bleaching = (1.0 - self._f0_now / self._f0_start
                     if self._f0_start and math.isfinite(self._f0_start) else math.nan)
        calibration = {"pixel_um": self.pixel_um, "dt_ms": self.dt_ms,
                       "source": dict(self.calibration_source),
                       **calibration_check(self.pixel_um, self.dt_ms, self.trained_range),
                       "network_sees": self.network_calibration}
        events = self.events
        report = {
            "schema_version": QUALITY_SCHEMA_VERSION,
            "recorded_ms": self._n_values / max(1, int(np.prod(self.frame_shape))) * self.dt_ms,
            "baseline_warmup_ms": self.baseline_warmup_ms,
            "ended": self.ended,
            "still_pixels": bool(noise is not None and not np.any(noise > 0)),
            "resting_snr": snr,
            "detection_limit_dff0": detection_limit_dff0(
                snr, self.pixel_um, self.dt_ms, len(self.frame_shape) == 1,
                self.min_significance),
            "saturation_counts": self.saturation_counts,
            "saturated_fraction": saturated,
            "saturated_fraction_in_cell": self._saturated_in_cell(),
            "bleaching_fraction": bleaching,
            "calibration": calibration,
            "blank": self._blank,
            "events": {
                "reported": events.reported,
                "rejected_not_significant": events.rejected_not_significant,
                "rejected_tail_of_earlier_event": events.rejected_tail,
                "rejected_no_rise": events.rejected_no_rise,
                "rejected_too_small": events.rejected_too_small,
                "min_significance": self.min_significance,
                "wave_min_significance": self.wave_min_significance,
                "local_min_significance": self.local_min_significance,
                "with_saturated_pixels": events.saturated,
                "not_characterized_burst": events.not_characterized_burst,
                "measurable_fraction": (events.measurable / events.reported
                                        if events.reported else math.nan),
                "measured_fraction_by_parameter": {
                    name: count / events.reported if events.reported else math.nan
                    for name, count in events.measured.items()},
                "rise_reported": events.rise_reported,
                "rise_under_2_samples": events.rise_under_2_samples,
                "truncated": events.truncated,
                "imprecise": events.imprecise,
            },
        }
        report["warnings"] = quality_warnings(report)
        return report

    def log_new_warnings(self, stream: str) -> list[str]:
        """Log each warning of the current report once; returns the new ones."""
        new = [w for w in self.report()["warnings"] if w not in self._warned]
        for warning in new:
            log.warning("%s: %s", stream, warning)
        self._warned.update(new)
        return new

    # -- internals -----------------------------------------------------------------------------
    def _sample_noise(self, first: int, frames: np.ndarray) -> None:
        """Keep differences of consecutive frames at indices that are multiples of the stride;
        when more than NOISE_SAMPLES are held, keep every other one and double the stride."""
        previous = self._last_frame if first == self._next_index else None
        stack = frames.astype(np.float32)
        for i in range(stack.shape[0]):
            index = first + i
            before = previous if i == 0 else stack[i - 1]
            if before is not None and index % self._stride == 0:
                self._diffs.append(stack[i] - before)
                if len(self._diffs) > NOISE_SAMPLES:
                    self._diffs = self._diffs[::2]
                    self._stride *= 2
        self._last_frame = stack[-1] if stack.shape[0] else self._last_frame
        self._next_index = first + stack.shape[0]

    def _noise_sd(self) -> np.ndarray | None:
        if len(self._diffs) < 4:
            return None
        diffs = np.abs(np.stack(self._diffs))
        return _MAD_TO_SD * np.median(diffs, axis=0) / math.sqrt(2.0)

    def _resting_snr(self, sd: np.ndarray | None) -> float:
        """Median F0 / noise SD over the cell, from the temporal noise SD per pixel ``sd``."""
        if sd is None or self._cell is None:
            return math.nan
        f0 = self._f0_latest[self._cell]
        noise = sd[self._cell]
        ok = noise > 0
        if not ok.any():
            return math.nan
        return float(np.median(f0[ok] / noise[ok]))

    def _saturated_in_cell(self) -> float:
        if self._cell is None or self._saturated_pixels is None:
            return 0.0 if self._n_values and self.saturation_counts is not None else math.nan
        frames = self._n_values / max(1, int(np.prod(self.frame_shape)))
        return float(self._saturated_pixels[self._cell].sum() / (self._cell.sum() * frames))


def quality_warnings(report: dict) -> list[str]:
    """One-line warnings for a quality report (also shown by the CLI and the dashboard)."""
    warnings = []
    recorded, warmup = report.get("recorded_ms"), report.get("baseline_warmup_ms")
    if report.get("ended") and recorded is not None and warmup is not None and recorded < warmup:
        warnings.append(f"the recording lasts {recorded:.0f} ms, less than the baseline's "
                        f"{warmup:.0f}-ms warm-up: F0 comes from frames that hold the events "
                        "themselves, so ΔF/F0 and every event are unreliable")
    if report.get("still_pixels"):
        warnings.append("no pixel changes over time (no noise at all): this does not look like "
                        "a recording of light; check the file, its channel and its axes")
    saturated = report["saturated_fraction"]
    if saturated is not None and math.isfinite(saturated) and saturated > SATURATION_WARNING:
        warnings.append(
            f"{100 * saturated:.1f} % of pixels are saturated (at {report['saturation_counts']:g}"
            " counts): events touching them are reported without parameters")
    snr = report["resting_snr"]
    if snr is not None and math.isfinite(snr) and snr < LOW_SNR_WARNING:
        warnings.append(f"resting SNR {snr:.1f} is very low: faint events cannot be detected "
                        "and reported ones are uncertain")
    limit = report.get("detection_limit_dff0")
    if limit is not None and math.isfinite(limit) and limit > LIMIT_WARNING_DFF0:
        warnings.append(f"a spark fainter than ΔF/F0 {limit:.2f} is likely missed at this "
                        "resting SNR and sampling (the detection limit): spark counts and "
                        "frequencies are lower bounds")
    bleaching = report["bleaching_fraction"]
    if bleaching is not None and math.isfinite(bleaching) and bleaching > BLEACHING_WARNING:
        warnings.append(f"the cell bleached by {100 * bleaching:.0f} % during the recording")
    recorded_s = (recorded or 0.0) / 1000.0
    rate = bleaching / recorded_s if recorded_s > 0 and bleaching is not None else math.nan
    if math.isfinite(rate) and rate > BLEACHING_RATE_WARNING_PER_S:
        warnings.append(
            f"the cell bleaches by {100 * rate:.0f} % per s: the baseline F0 (a low quantile of "
            f"the past 2 s) lags it by about half a second, so at rest ΔF/F0 reads about "
            f"{0.5 * rate:.2f} low and FDHM and t50 come out short (docs/RESULTS.md, \"Why the "
            "development set's durations come out short\")")
    warnings += _calibration_warnings(report["calibration"])
    blank = blank_warning(report.get("blank"))
    if blank:
        warnings.append(blank)
    two_samples_ms = 2 * report["calibration"]["dt_ms"]
    reported = report["events"].get("rise_reported", 0)
    if reported and two_samples_ms > TYPICAL_SPARK_RISE_MS:
        warnings.append(
            f"rise times under 2 samples ({two_samples_ms:g} ms) cannot be resolved, and a "
            f"spark's rise is typically ~{TYPICAL_SPARK_RISE_MS:g} ms: reported rise times are "
            "likely too long (noise moves the 10 % crossing earlier); a faster line or frame "
            "rate resolves them")
    if report["events"].get("truncated"):
        warnings.append("regions lasting longer than the model's longest event were cut into "
                        f"pieces (flag '{TRUNCATED_FLAG}'), reported with position and time only: "
                        "something in the field never returns to rest (a flickering or "
                        "drifting spot?)")
    if report["events"].get("not_characterized_burst"):
        warnings.append("candidate events came in bursts beyond the characterization budget: "
                        "some are reported with position and time only (flag 'burst')")
    return warnings


def _calibration_warnings(calibration: dict) -> list[str]:
    warnings = []
    units = {"pixel_um": "µm pixel size", "dt_ms": "ms interval"}
    flags = {"pixel_um": "--pixel-um", "dt_ms": "--dt-ms"}
    seen = calibration.get("network_sees") or {}
    for key in calibration["outside"]:
        lo, hi = calibration["trained_range"][key]
        resampled = (f" (its network sees the stream resampled to {seen[key]:g})"
                     if key in seen and seen[key] != calibration[key] else "")
        warnings.append(f"{calibration[key]:g} {units[key]} is outside the model's trained range "
                        f"{lo:g}-{hi:g}{resampled}: detections and the cell class are less "
                        "reliable")
    guessed = [key for key in ("pixel_um", "dt_ms") if calibration["source"].get(key) == "flag"]
    for key in guessed:
        warnings.append(f"{units[key]} {calibration[key]:g} comes from {flags[key]}, the file "
                        "records none: every µm and ms figure depends on it")
    return warnings


class SaturationBuffer:
    """Saturated-pixel masks of raw frames, kept until their frames are final.

    Raw frame ``i`` and ΔF/F0 frame ``i`` are the same frame (the preprocessor emits every frame
    once, in order), so the analyzer hands the tracker ``take(first, stop)`` next to the ΔF/F0
    of those frames. Nothing is held until the stream first saturates.
    """

    def __init__(self, frame_shape: tuple[int, ...]) -> None:
        self.frame_shape = tuple(frame_shape)
        self._end = 0  # absolute index of the next frame
        self._masks: FrameRing | None = None  # from the first frame that saturated

    def add(self, first: int, saturated: np.ndarray | None, n: int) -> None:
        """Masks of raw frames ``first .. first+n-1`` (None: none of them saturated)."""
        if first != self._end:
            raise ValueError(f"saturation of frame {first} given, {self._end} expected")
        self._end = first + n
        if self._masks is None:
            if saturated is None or not saturated.any():
                return
            self._masks = FrameRing(self.frame_shape, bool, first)
        self._masks.append(first, np.zeros((n, *self.frame_shape), bool) if saturated is None
                           else saturated)

    def take(self, first: int, stop: int) -> np.ndarray | None:
        """Masks of frames ``first .. stop-1`` (None when none saturated); frames before
        ``stop`` are forgotten. Frames from before the first saturation count as unsaturated."""
        if self._masks is None or stop <= self._masks.first:
            return None
        start = max(first, self._masks.first)
        held = self._masks.read(start, stop)
        out = None
        if held.any():
            out = np.zeros((stop - first, *self.frame_shape), bool)
            out[start - first:] = held
        self._masks.release(stop)
        return out
