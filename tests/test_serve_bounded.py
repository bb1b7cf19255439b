"""``serve`` keeps bounded memory per stream over long runs (issue 12, Build 4), and its delay
counts the time a chunk waited in the ingest queue (Build 3)."""

from __future__ import annotations

import logging
import time
import types
from collections import deque

import numpy as np
import pytest

from acquisition.simulate import EventStats, LinescanParams, simulate_linescan
from engine.pipeline import DetectorFactory, EngineConfig
from engine.serve import Server
from engine.sinks import SinkSet
from tests.serve_helpers import MemorySink, StubIngest, chunk_item, start_item, stop_item

LOOP_LINES = 3000
CHUNK = 100
WINDOW = 32


@pytest.fixture(scope="module")
def busy_linescan() -> np.ndarray:
    """4.5 s of a 64-px line-scan with many sparks (about 25 per loop)."""
    params = LinescanParams(n_lines=LOOP_LINES, n_pixels=64,
                            stats=EventStats(spark_rate_per_100um_s=60.0))
    return simulate_linescan(params, seed=5).data


def footprint(obj, seen: set[int] | None = None) -> np.ndarray:
    """``[array bytes, container items]`` reachable from ``obj`` (functions, modules, loggers
    and classes skipped): how much state an object holds, not timing or RSS."""
    seen = set() if seen is None else seen
    skip = (str, bytes, int, float, complex, bool, type(None), type, types.FunctionType,
            types.MethodType, types.ModuleType, logging.Logger)
    total = np.zeros(2, np.int64)
    if isinstance(obj, skip) or id(obj) in seen:
        return total
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return np.array([obj.nbytes, 0])
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, deque, set, frozenset)):
        children = list(obj)
    else:
        state = getattr(obj, "__dict__", None)
        return footprint(state, seen) if isinstance(state, dict) else total
    total[1] = len(children)
    for child in children:
        total += footprint(child, seen)
    return total


def _server(sink: MemorySink) -> Server:
    server = Server(StubIngest(), DetectorFactory(EngineConfig(detector="classical")),
                    SinkSet([sink]), stats_interval_s=0.0)
    server.recent_events = WINDOW
    return server


def test_stream_state_stays_bounded_over_a_long_run(busy_linescan, monkeypatch) -> None:
    monkeypatch.setattr("engine.analyzer.DELAY_SAMPLES", 64)  # so that the run fills it
    sink = MemorySink()
    server = _server(sink)
    server.handle(start_item("long", busy_linescan, 0.14, 1.5))
    sizes, seq = [], 0
    for loop in range(12):  # 54 s of recording
        for first in range(0, LOOP_LINES, CHUNK):
            seq += 1
            server.handle(chunk_item("long", seq, loop * LOOP_LINES + first,
                                     busy_linescan[first:first + CHUNK]))
            server._periodic()  # a statistics sample per chunk (stats_interval_s = 0)
        sizes.append(footprint(server.live["long"]))
    live = server.live["long"]
    n_events = len(sink.events["long"])
    assert n_events > 4 * WINDOW, "the run should overflow the event window several times"
    assert len(live.events.recent) == WINDOW and live.events.n_events == n_events
    assert sink.stats["long"][-1]["events"] == n_events
    # the state after the warm-up does not grow with the recording
    sizes = np.array(sizes)  # (loops, [bytes, items])
    assert np.all(sizes[6:].max(axis=0) <= 1.25 * sizes[2:6].max(axis=0)), sizes
    server.handle(stop_item("long", 12 * LOOP_LINES))
    done = server.finished["long"]
    assert done["n_events"] == len(sink.events["long"]) and len(done["events"]) == WINDOW
    assert done["summary"]["n_sparks"] == sum(e.kind == "spark" for e in sink.events["long"])


def test_finished_streams_kept_are_bounded(busy_linescan) -> None:
    server = _server(MemorySink())
    server.finished_kept = 3
    for i in range(8):
        name = f"short-{i}"
        server.handle(start_item(name, busy_linescan, 0.14, 1.5))
        server.handle(chunk_item(name, 1, 0, busy_linescan[:200]))
        server.handle(stop_item(name, 200))
    assert list(server.finished) == ["short-5", "short-6", "short-7"]
    assert server.n_done == 8 and not server.live


def test_delay_counts_the_ingest_queue_wait(busy_linescan) -> None:
    """A chunk that waited 3 s in the ingest queue shows a ≥ 3 s delay and queue wait."""
    sink = MemorySink()
    server = _server(sink)
    server.handle(start_item("late", busy_linescan, 0.14, 1.5))
    for seq, first in enumerate(range(0, LOOP_LINES, CHUNK), start=1):
        arrived = time.perf_counter() - 3.0
        server.handle(chunk_item("late", seq, first, busy_linescan[first:first + CHUNK], arrived))
    server._periodic()
    analyzer = server.live["late"].analyzer
    p50, _ = analyzer.stats.delay_percentiles()
    stats = sink.stats["late"][-1]
    assert p50 >= 3000.0 and stats["compute_p50_ms"] >= 3000.0
    assert stats["queue_wait_s"] >= 3.0
    assert stats["lag_s"] >= 3.0  # wall clock: the oldest unanalysed line waited 3 s
