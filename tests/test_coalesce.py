"""Queued consecutive chunks of a stream are joined before analysis (engine.coalesce)."""

from __future__ import annotations

import json

import numpy as np

from acquisition.ingest import ChunkReceived, StreamStopped
from acquisition.wire import ChunkHeader
from engine.coalesce import coalesce


def chunk(stream: str, first: int, n: int, t: float | None = 1.0, width: int = 8) -> ChunkReceived:
    data = np.arange(first * width, (first + n) * width, dtype=np.uint16).reshape(n, width)
    return ChunkReceived(ChunkHeader(stream=stream, seq=first + 1, first=first, n=n,
                                     t_ns=first, dtype="uint16"), data, t)


def queue_of(items):
    items = list(items)
    return lambda: items.pop(0) if items else None


def test_consecutive_chunks_join_and_the_first_other_item_is_returned():
    stop = StreamStopped.__new__(StreamStopped)
    joined, leftover = coalesce(chunk("a", 0, 1, t=5.0),
                                queue_of([chunk("a", 1, 2, t=3.0), chunk("a", 3, 1, t=None),
                                          stop, chunk("a", 4, 1)]))
    assert (joined.header.first, joined.header.n, joined.header.seq) == (0, 4, 4)
    np.testing.assert_array_equal(joined.data, chunk("a", 0, 4).data)
    assert joined.t_received == 3.0 and leftover is stop


def test_other_stream_gap_or_limit_ends_the_join():
    for follower in (chunk("b", 1, 1), chunk("a", 2, 1), chunk("a", 1, 1, width=4)):
        joined, leftover = coalesce(chunk("a", 0, 1), queue_of([follower]))
        assert joined.header.n == 1 and leftover is follower
    joined, leftover = coalesce(chunk("a", 0, 3), queue_of([chunk("a", 3, 3)]), max_frames=4)
    assert joined.header.n == 3 and leftover.header.first == 3
    joined, leftover = coalesce(chunk("a", 0, 1), queue_of([]))
    assert joined.header.n == 1 and leftover is None


def test_serve_joins_queued_one_line_chunks_and_finds_the_same_events(monkeypatch):
    """Through Server's loop: 600 one-line messages already queued are analysed in far fewer
    pushes, with the same events as one big chunk."""
    from serve_helpers import MemorySink, StubIngest, chunk_item, start_item, stop_item

    from acquisition.simulate import EventStats, LinescanParams, simulate_linescan
    from engine.analyzer import StreamAnalyzer
    from engine.pipeline import DetectorFactory, EngineConfig
    from engine.serve import Server
    from engine.sinks import SinkSet

    data = simulate_linescan(LinescanParams(n_lines=600, n_pixels=64,
                                            stats=EventStats(spark_rate_per_100um_s=60.0)),
                             seed=3).data
    pushes = []
    original = StreamAnalyzer.push

    def counting(self, first, frames, t_arrival=None):
        pushes.append(len(frames))
        return original(self, first, frames, t_arrival)

    monkeypatch.setattr(StreamAnalyzer, "push", counting)
    events = {}
    for name, size in (("lines", 1), ("whole", 600)):
        items = [start_item(name, data, 0.14, 1.5)]
        items += [chunk_item(name, 1 + i // size, i, data[i:i + size])
                  for i in range(0, 600, size)]
        items.append(stop_item(name, 600))
        sink = MemorySink()
        server = Server(_queued_ingest(StubIngest, items), DetectorFactory(EngineConfig(detector="classical")),
                        SinkSet([sink]), stats_interval_s=0.0)
        pushes.clear()
        server._loop(max_streams=1)
        events[name] = json.dumps([{k: v for k, v in e.to_dict().items()
                                    if k not in ("stream", "cell")} for e in sink.events[name]])
        if name == "lines":
            assert sum(pushes) == 600 and len(pushes) <= 2, pushes
    assert events["lines"] == events["whole"] and events["whole"] != "[]"


def _queued_ingest(base: type, items: list):
    """An ingest whose queue already holds ``items``."""
    class Queued(base):
        def get(self, timeout_s=None):
            return items.pop(0) if items else None
    return Queued()
