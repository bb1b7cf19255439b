"""Driving a :class:`~engine.serve.Server` in-process, without ZeroMQ: items are handed to
:meth:`~engine.serve.Server.handle` directly, and a memory sink keeps what it wrote."""

from __future__ import annotations

import numpy as np

from acquisition.ingest import ChunkReceived, StreamStarted, StreamStopped
from acquisition.stream_kind import StreamKind
from acquisition.wire import ChunkHeader, StartHeader, StopHeader


class StubIngest:
    """What :class:`Server` asks of an ingest when items are handed to it directly."""

    def stats(self) -> dict:
        return {}

    def queue_depth(self) -> int:
        return 0


class MemorySink:
    """A store-kind sink that keeps every call (events, statistics, open/closed streams)."""

    kind = "store"

    def __init__(self) -> None:
        self.events: dict[str, list] = {}
        self.stats: dict[str, list[dict]] = {}
        self.opened: list[str] = []
        self.closed: list[str] = []

    def open_stream(self, info: dict) -> None:
        self.opened.append(info["stream"])

    def write_events(self, stream: str, events: list) -> None:
        self.events.setdefault(stream, []).extend(events)

    def write_stats(self, stream: str, stats: dict) -> None:
        self.stats.setdefault(stream, []).append(stats)

    def write_cell(self, stream: str, summary: dict) -> None:
        pass

    def close_stream(self, stream: str) -> None:
        self.closed.append(stream)

    def close(self) -> None:
        pass


def start_item(stream: str, data: np.ndarray, pixel_um: float, dt_ms: float,
               blank: float | None = None) -> StreamStarted:
    mode = StreamKind.from_item_shape(data.shape[1:]).wire_mode
    return StreamStarted(StartHeader(stream, mode, str(data.dtype), tuple(data.shape[1:]),
                                     pixel_um, dt_ms, blank=blank))


def chunk_item(stream: str, seq: int, first: int, frames: np.ndarray,
               t_received: float | None = None) -> ChunkReceived:
    return ChunkReceived(ChunkHeader(stream, seq, first, len(frames), 0), frames, t_received)


def stop_item(stream: str, n_total: int) -> StreamStopped:
    return StreamStopped(StopHeader(stream, 0, n_total), None)
