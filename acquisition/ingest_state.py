"""Per-stream state and counters of the ingest, and the items it hands to the engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from acquisition.wire import ChunkHeader, StartHeader, StopHeader


@dataclass
class StreamStats:
    """Counters of one stream (or of the ``"_unattributed"`` bucket)."""

    stream: str
    state: str = "unknown"  # "running" | "stopped" | "unknown" (no valid start seen)
    messages: int = 0
    frames_received: int = 0  # new lines/frames (duplicates excluded)
    frames_recorded: int = 0
    missing_frames: int = 0
    gap_ranges: list[list[int]] = field(default_factory=list)  # [start, end) still missing
    duplicates: int = 0  # lines/frames received more than once
    out_of_order: int = 0  # chunks that arrived after a later one
    errors_by_code: dict[str, int] = field(default_factory=dict)
    queue_depth: int = 0  # items of this stream queued or waiting to be queued
    last_receive_s: float | None = None  # time.time() of the last message
    n_total_declared: int | None = None
    recording: str | None = None  # base path of the raw recording (add .tif/.json)
    recording_done: bool = False
    nonfinite_values: int = 0  # NaN/Inf values received (float streams)
    failure: str | None = None  # why the stream was failed ("record_failed: ..."), if it was
    abandoned: bool = False  # closed after its idle timeout, without a stop from its publisher

    @property
    def errors(self) -> int:
        return sum(self.errors_by_code.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}

    def snapshot(self) -> StreamStats:
        return replace(
            self, gap_ranges=[list(g) for g in self.gap_ranges],
            errors_by_code=dict(self.errors_by_code),
        )


@dataclass(frozen=True)
class StreamStarted:
    header: StartHeader


@dataclass(frozen=True)
class ChunkReceived:
    header: ChunkHeader
    data: np.ndarray
    t_received: float | None = None  # time.perf_counter() when the message arrived


@dataclass(frozen=True)
class StreamStopped:
    header: StopHeader
    stats: StreamStats


IngestItem = StreamStarted | ChunkReceived | StreamStopped


@dataclass(eq=False)
class StreamState:
    """Receiver-side state of one running stream: its header, owner (the connection that
    started it), sequence accounting and acknowledgement progress."""

    header: StartHeader
    stats: StreamStats
    owner: bytes = b""
    next_first: int = 0
    acked_seq: int = -1  # every message up to this seq is handled (recorded when recording)
    final: bool = False  # the stop is handled and the recording closed
    failure: tuple[str, str] | None = None  # (code, message): later chunks are refused
    failure_sent: bool = False

    def account(self, first: int, n: int) -> tuple[int, int]:
        """Update gaps for chunk ``[first, first+n)``; return (new items, duplicate items).
        Keeps ``stats.missing_frames`` up to date without re-summing the gap list."""
        end, gaps = first + n, self.stats.gap_ranges
        if first >= self.next_first:
            if first > self.next_first:
                gaps.append([self.next_first, first])
                self.stats.missing_frames += first - self.next_first
            self.next_first = end
            return n, 0
        filled = _subtract_range(gaps, first, min(end, self.next_first))
        self.stats.missing_frames -= filled
        beyond = max(0, end - self.next_first)
        if filled:
            self.stats.out_of_order += 1
        self.next_first = max(self.next_first, end)
        return filled + beyond, n - filled - beyond


def _subtract_range(gaps: list[list[int]], start: int, end: int) -> int:
    """Remove ``[start, end)`` from the gap list in place; return how many items it filled."""
    if not gaps or end <= gaps[0][0] or start >= gaps[-1][1]:  # sorted, disjoint
        return 0
    filled, kept = 0, []
    for gap_start, gap_end in gaps:
        lo, hi = max(gap_start, start), min(gap_end, end)
        if lo >= hi:
            kept.append([gap_start, gap_end])
            continue
        filled += hi - lo
        kept.extend(g for g in ([gap_start, lo], [hi, gap_end]) if g[0] < g[1])
    gaps[:] = kept
    return filled
