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


@dataclass
class StreamState:
    """Receiver-side state of one running stream: its header and sequence accounting."""

    header: StartHeader
    stats: StreamStats
    next_first: int = 0

    def account(self, first: int, n: int) -> tuple[int, int]:
        """Update gaps for chunk ``[first, first+n)``; return (new items, duplicate items)."""
        end, gaps = first + n, self.stats.gap_ranges
        if first >= self.next_first:
            if first > self.next_first:
                gaps.append([self.next_first, first])
            self.next_first = end
            return n, 0
        filled = _subtract_range(gaps, first, min(end, self.next_first))
        beyond = max(0, end - self.next_first)
        if filled:
            self.stats.out_of_order += 1
        self.next_first = max(self.next_first, end)
        return filled + beyond, n - filled - beyond


def _subtract_range(gaps: list[list[int]], start: int, end: int) -> int:
    """Remove ``[start, end)`` from the gap list in place; return how many items it filled."""
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
