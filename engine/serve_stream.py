"""One live stream on the ``serve`` side: its analysis view of the ``start`` header, its state,
its statistics sample, its preview image.

:class:`LiveStream` holds what :class:`~engine.serve.Server` keeps per running stream (the
analyzer, the bounded window of recent events, the wall-clock lag, the bookkeeping of the last
statistics sample); :meth:`LiveStream.stats_sample` builds one statistics sample and
:meth:`LiveStream.write_stats` writes it; :meth:`LiveStream.preview` is its ΔF/F0 preview for
the dashboard; :func:`stream_row` its row in the store; :func:`preview_image` and
:func:`finite_for_analysis` are the two array helpers of the loop.

Delay and lag, in seconds: ``compute_p50_ms``/``compute_p99_ms`` run from a chunk's arrival
at the ingest (``ChunkReceived.t_received``, so the time it waited in the ingest queue counts)
to the post-processing of the frames it completed, i.e. to its events; ``lag_s`` is the
wall-clock age of the oldest data not yet analysed (:mod:`engine.wall_lag`; data held back
before the ingest counts) and ``queue_wait_s`` the longest a chunk of the stream waited in the
ingest queue during the last statistics interval. ``burst`` says that candidate events
were reported without characterization in that interval (:mod:`engine.burst`;
``events_not_characterized`` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from acquisition.wire import StartHeader

from .analyzer import StreamAnalyzer, StreamInfo
from .event_window import EventWindow
from .stream_summary import spark_frequency
from .wall_lag import WallClockLag

PREVIEW_ROWS = 256
PREVIEW_COLS = 256
PREVIEW_DFF0_RANGE = (-0.5, 2.5)


def stream_info_from_header(header: StartHeader) -> StreamInfo:
    """The analysis view of a wire ``start`` header."""
    return StreamInfo(stream=header.stream, stream_kind=header.stream_kind,
                      frame_shape=tuple(header.shape),
                      pixel_um=header.pixel_um, dt_ms=header.dt_ms, blank=header.blank,
                      cell=header.cell or header.stream, metadata=dict(header.metadata),
                      dtype=header.dtype,
                      calibration_source={"pixel_um": "wire", "dt_ms": "wire"})


def stream_row(analyzer: StreamAnalyzer, recording, field: str | None) -> dict:
    """The store's row of a starting stream (what the factory ``describe``s aside)."""
    info = analyzer.info
    return {"stream": info.stream, "cell": info.cell, "mode": info.stream_kind.wire_mode,
            "shape": list(info.frame_shape), "pixel_um": info.pixel_um, "dt_ms": info.dt_ms,
            "lookahead_ms": analyzer.lookahead_ms, "recording": recording,
            "detector": analyzer.detector.name, "field": field}


@dataclass
class LiveStream:
    """One running stream on the server side."""

    analyzer: StreamAnalyzer
    started_s: float
    events: EventWindow = field(default_factory=EventWindow)
    last_stats_s: float = 0.0
    last_preview_s: float = 0.0
    frames_at_last_stats: tuple[int, int] = (0, 0)
    cell_n_sparks: int = -1
    lag: WallClockLag = field(default_factory=WallClockLag)
    burst_at_last_stats: int = 0  # analyzer.budget.n_over at the last statistics sample
    queue_wait_s: float = 0.0  # longest ingest-queue wait of a chunk since the last sample
    stats_queued: bool = False  # a statistics sample is queued in the pool
    collect_queued: bool = False  # a collect of batched results is queued in the pool

    def stats_sample(self, ingest, queue_depth: int, now: float) -> dict:
        """The statistics sample at ``now``; ``ingest``: the ingest's stats of this stream
        (None when it has none)."""
        stats = self.analyzer.stats
        p50, p99 = stats.delay_percentiles()
        elapsed = max(1e-9, now - (self.last_stats_s or self.started_s))
        frames_in = ingest.frames_received if ingest else stats.frames_in
        prev_in, prev_final = self.frames_at_last_stats
        n_burst = self.analyzer.budget.n_over
        return {
            "t_s": now, "frames_in": frames_in, "frames_analyzed": stats.frames_final,
            "lag_frames": frames_in - stats.frames_final,
            "lag_s": self.lag.lag_s(stats.frames_final, now),
            "queue_wait_s": self.queue_wait_s,
            "burst": n_burst > self.burst_at_last_stats, "events_not_characterized": n_burst,
            "compute_p50_ms": p50, "compute_p99_ms": p99,
            "gaps": ingest.missing_frames if ingest else 0,
            "errors": ingest.errors if ingest else 0,
            "queue_depth": queue_depth,
            "input_rate_hz": (frames_in - prev_in) / elapsed,
            "analysis_rate_hz": (stats.frames_final - prev_final) / elapsed,
            "lookahead_ms": self.analyzer.lookahead_ms, "events": stats.events,
            "spark_freq_per_100um_s": spark_frequency(self.analyzer, self.events.counts["spark"]),
            "frames_recorded": ingest.frames_recorded if ingest else 0,
            "recording_failure": ingest.failure if ingest else None,
            "errors_by_code": ingest.errors_by_code if ingest else {},
            "quality": self.analyzer.quality_report(),
        }

    def write_stats(self, sinks, stream: str, ingest, queue_depth: int, now: float,
                    **extra) -> None:
        """Write the statistics sample at ``now`` (with ``extra`` fields) to ``sinks``."""
        sample = self.stats_sample(ingest, queue_depth, now)
        sinks.write_stats(stream, {**sample, **extra})
        self.analyzer.quality.log_new_warnings(stream)
        self.sampled(sample, now)

    def preview(self) -> tuple[int, np.ndarray, float, float, int] | None:
        """``(first, image, lo, hi, step)`` of recent ΔF/F0 for ``publish_preview`` (a movie's
        is its latest frame), or None before the first preprocessed frame."""
        recent = self.analyzer.recent_dff0()
        if recent is None:
            return None
        first, dff0 = recent
        linescan = self.analyzer.info.stream_kind.is_linescan
        image, step = preview_image(dff0, linescan)
        if not linescan:
            first += dff0.shape[0] - 1
        lo, hi = PREVIEW_DFF0_RANGE
        return first, image, lo, hi, step

    def sampled(self, sample: dict, now: float) -> None:
        """Remember ``sample`` (written at ``now``) as the last one."""
        self.last_stats_s = now
        self.frames_at_last_stats = (sample["frames_in"], sample["frames_analyzed"])
        self.burst_at_last_stats = sample["events_not_characterized"]
        self.queue_wait_s = 0.0


def finite_for_analysis(data: np.ndarray) -> np.ndarray:
    """``data`` with NaN/Inf replaced by the finite median (the recording keeps them)."""
    if data.dtype.kind != "f":
        return data
    finite = np.isfinite(data)
    if finite.all():
        return data
    fill = float(np.median(data[finite])) if finite.any() else 0.0
    return np.where(finite, data, np.float32(fill)).astype(data.dtype, copy=False)


def preview_image(dff0: np.ndarray, linescan: bool) -> tuple[np.ndarray, int]:
    """uint8 image of recent ΔF/F0: a kymograph strip (line-scan) or the last frame (movie)."""
    if linescan:
        step = max(1, -(-dff0.shape[0] // PREVIEW_ROWS))
        image = dff0[::step]
    else:
        step = 1
        image = dff0[-1]
    col_step = max(1, -(-image.shape[-1] // PREVIEW_COLS))
    image = image[..., ::col_step]
    lo, hi = PREVIEW_DFF0_RANGE
    scaled = np.clip((image - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return scaled.astype(np.uint8), step
