"""``serve``'s post-processing pool (engine/serve_pool.py, engine/serve_shared.py): one stream on
one worker at a time and in order, streams in parallel, bounded work in flight, and a server
with 2 workers that gives exactly the events of 1 worker, stream by stream, in the same order,
and keeps going when one stream's analysis raises.

No fixed sleeps: concurrency is shown with events and barriers that would time out without it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import make_tiny_model_dir

from acquisition.simulate import EventStats, LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from engine.analyzer import StreamAnalyzer
from engine.pipeline import DetectorFactory, EngineConfig
from engine.serve import Server
from engine.serve_pool import InlinePool, StreamPool, default_workers, make_pool
from engine.sinks import SinkSet
from tests.serve_helpers import MemorySink, StubIngest, chunk_item, start_item, stop_item

TIMEOUT_S = 30.0
CHUNK = 150
BLANK = 100.0


# -- the pool ------------------------------------------------------------------------------------
def test_one_key_runs_in_order_and_never_on_two_workers_at_once() -> None:
    pool = StreamPool(3)
    done: dict[str, list[int]] = {"a": [], "b": []}
    active = {"a": 0, "b": 0}
    overlap: list[str] = []
    lock = threading.Lock()

    def task(key: str, i: int) -> None:
        with lock:
            active[key] += 1
            if active[key] > 1:
                overlap.append(key)
        done[key].append(i)
        sum(range(2000))  # some work, so that tasks could overlap if the pool let them
        with lock:
            active[key] -= 1

    for i in range(200):
        pool.submit("a", task, "a", i)
        pool.submit("b", task, "b", i)
    assert pool.join(TIMEOUT_S)
    pool.close()
    assert done == {"a": list(range(200)), "b": list(range(200))} and not overlap


def test_different_keys_run_at_the_same_time() -> None:
    """Two keys, each task waiting for the other's: completes only if they run in parallel."""
    pool = StreamPool(2)
    barrier = threading.Barrier(2, timeout=TIMEOUT_S)
    met = []
    for key in ("a", "b"):
        pool.submit(key, lambda k=key: met.append((k, barrier.wait())))
    assert pool.join(TIMEOUT_S)
    pool.close()
    assert sorted(k for k, _ in met) == ["a", "b"]


def test_submit_waits_while_the_key_or_the_pool_is_full() -> None:
    pool = StreamPool(1, max_per_stream=2, max_total=3)
    release = threading.Event()
    assert pool.submit("a", release.wait, TIMEOUT_S)  # running
    assert pool.submit("a", lambda: None)  # queued: "a" holds 2
    assert not pool.submit("a", lambda: None, timeout_s=0.01)  # per stream
    assert pool.submit("b", lambda: None)  # pool holds 3
    assert not pool.submit("c", lambda: None, timeout_s=0.01)  # in all
    assert pool.submit("a", lambda: None, bounded=False)  # the caller bounds these itself
    assert pool.pending() == 4 and pool.pending("a") == 3
    release.set()
    assert pool.submit("a", lambda: None, timeout_s=TIMEOUT_S)  # room again once it ran
    assert pool.join(TIMEOUT_S) and pool.pending() == 0
    pool.close()
    with pytest.raises(RuntimeError):
        pool.submit("a", lambda: None)


def test_a_raising_task_does_not_stop_its_worker_or_its_key(caplog) -> None:
    pool = StreamPool(1)
    ran = []
    pool.submit("a", lambda: 1 / 0)
    pool.submit("a", ran.append, 1)
    assert pool.join(TIMEOUT_S) and ran == [1]
    pool.close()
    assert any("failed" in r.getMessage() for r in caplog.records)


def test_a_running_task_takes_or_puts_back_the_tasks_queued_behind_it() -> None:
    """What the server uses to join a stream's queued chunks into one push."""
    pool = StreamPool(1)
    gate = threading.Event()
    taken, ran = [], []

    def first() -> None:
        gate.wait(TIMEOUT_S)
        small = lambda fn, args: fn == ran.append and args[0] < 3  # noqa: E731
        while (args := pool.take_next("a", small)) is not None:
            taken.append(args[0])
        args = pool.take_next("a", lambda fn, args: True)
        pool.put_back("a", ran.append, *args)  # could not use it: back at the head

    pool.submit("a", first)
    for i in (1, 2, 5, 6):
        pool.submit("a", ran.append, i)
    gate.set()
    assert pool.join(TIMEOUT_S) and pool.pending() == 0
    pool.close()
    assert taken == [1, 2] and ran == [5, 6]


def test_one_worker_runs_inline() -> None:
    ran = []
    pool = make_pool(1)
    assert isinstance(pool, InlinePool) and pool.submit("a", ran.append, 1) and ran == [1]
    assert isinstance(make_pool(2), StreamPool) and default_workers() >= 1


# -- a server with workers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recordings() -> dict[str, np.ndarray]:
    """Three different 64-px line-scans with many sparks (seeded; blank 100, 0.14 µm, 1.5 ms)."""
    params = LinescanParams(n_lines=1800, n_pixels=64,
                            stats=EventStats(spark_rate_per_100um_s=60.0))
    recs = {f"s{i}": simulate_linescan(params, seed=seed) for i, seed in enumerate((42, 43, 45))}
    assert {(r.blank, r.pixel_um, r.dt_ms) for r in recs.values()} == {(BLANK, 0.14, 1.5)}
    return {name: rec.data for name, rec in recs.items()}


class OrderSink(MemorySink):
    """A memory sink that also checks that its calls never overlap (they are serialized)."""

    def __init__(self) -> None:
        super().__init__()
        self._busy = threading.Lock()
        self.overlapped = 0

    def write_events(self, stream: str, events: list) -> None:
        if not self._busy.acquire(blocking=False):
            self.overlapped += 1
            self._busy.acquire()
        try:
            super().write_events(stream, events)
        finally:
            self._busy.release()


def _serve(recordings: dict[str, np.ndarray], workers: int, config: EngineConfig,
           chunk: int = CHUNK, factory: DetectorFactory | None = None
           ) -> tuple[Server, OrderSink]:
    """Hand the streams to a server chunk by chunk, round robin, as the dispatcher does."""
    sink = OrderSink()
    server = Server(StubIngest(), factory or DetectorFactory(config), SinkSet([sink]),
                    workers=workers)
    for name, data in recordings.items():
        server.handle(start_item(name, data, 0.14, 1.5, blank=BLANK))
    n = max(len(d) for d in recordings.values())
    for seq, first in enumerate(range(0, n, chunk), start=1):
        for name, data in recordings.items():
            server.handle(chunk_item(name, seq, first, data[first:first + chunk]))
        server.poll_batches()
        server._periodic()
    for name, data in recordings.items():
        server.handle(stop_item(name, len(data)))
    assert server.drain(TIMEOUT_S)
    server.close()
    return server, sink


def _as_json(events: list) -> str:
    return json.dumps([e.to_dict() for e in events])


def _same_events(recordings, config: EngineConfig, chunk: int = CHUNK) -> dict[str, int]:
    one, sink1 = _serve(recordings, 1, config, chunk)
    two, sink2 = _serve(recordings, 2, config, chunk)
    assert sink2.overlapped == 0
    assert not one.failed and not two.failed and two.n_done == len(recordings)
    for name in recordings:  # same events, same order, written in the same calls
        assert _as_json(sink2.events[name]) == _as_json(sink1.events[name]), name
        ids = [e.event_id for e in sink2.events[name]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert two.finished[name]["summary"]["n_sparks"] == one.finished[name]["summary"][
            "n_sparks"]
    return {name: len(sink2.events[name]) for name in recordings}


def test_two_workers_give_the_events_of_one_in_order(recordings, monkeypatch) -> None:
    """Classical detector: same events per stream and order; a stream's chunks are never
    analysed on two workers at once, while different streams are analysed at once."""
    active: dict[str, int] = {}
    seen = {"overlap_same": 0, "parallel": 0}
    lock = threading.Lock()
    original = StreamAnalyzer.push

    def push(self, first, frames, t_arrival=None):
        with lock:
            active[self.info.stream] = active.get(self.info.stream, 0) + 1
            seen["overlap_same"] += active[self.info.stream] > 1
            seen["parallel"] += sum(v > 0 for v in active.values()) > 1
        try:
            return original(self, first, frames, t_arrival)
        finally:
            with lock:
                active[self.info.stream] -= 1

    monkeypatch.setattr(StreamAnalyzer, "push", push)
    counts = _same_events(recordings, EngineConfig(detector="classical"))
    assert all(n > 5 for n in counts.values()), counts
    assert seen["overlap_same"] == 0
    assert seen["parallel"] > 0, "with 2 workers, some pushes of different streams overlap"


@pytest.mark.parametrize("detector,backend,batch", [("network", "onnxruntime", True),
                                                    ("hybrid", "torch", False)])
def test_two_workers_with_a_network_give_the_events_of_one(recordings, tmp_path: Path,
                                                           monkeypatch, detector, backend,
                                                           batch) -> None:
    """Inference shared behind its lock: the cross-stream batcher (windows of one stream
    delivered by another's worker), and a backend not known to be thread-safe (torch)."""
    monkeypatch.setenv("CASTREAM_CACHE_DIR", str(tmp_path / "cache"))
    model = make_tiny_model_dir(tmp_path / "m", 2, behaviour="threshold", threshold_dff0=0.3)
    config = EngineConfig(model=model, detector=detector, backend=backend, batch=batch,
                          max_batch=4, max_wait_ms=1e6)
    counts = _same_events(recordings, config, chunk=97)
    assert sum(counts.values()) > 0


class SingleThreadedBackend:
    """A backend that must not run twice at once (like torch's CUDA runner or TensorRT):
    counts calls that overlapped. Probabilities: the input repeated on 4 channels."""

    name, device, reason = "fake", "cpu", ""

    def __init__(self) -> None:
        self.busy = threading.Lock()
        self.calls = self.overlapped = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if not self.busy.acquire(blocking=False):
            self.overlapped += 1
            self.busy.acquire()
        try:
            self.calls += 1
            for _ in range(20):  # numpy work that releases the GIL: room for an overlap
                out = np.repeat(batch, 4, axis=1) * np.float32(1.0)
            return out
        finally:
            self.busy.release()

    def close(self) -> None:
        pass


def test_a_backend_not_known_thread_safe_runs_one_call_at_a_time(recordings,
                                                                  tmp_path: Path) -> None:
    from engine.models import ModelDir

    model = make_tiny_model_dir(tmp_path / "m", 2, behaviour="threshold", threshold_dff0=0.3)
    config = EngineConfig(model=model, detector="network", batch=False)
    backend = SingleThreadedBackend()
    factory = DetectorFactory(config)
    factory.preload(StreamKind.LINESCAN, ModelDir.load(model), backend)
    _serve(recordings, 3, config, chunk=61, factory=factory)
    assert backend.calls > 20 and backend.overlapped == 0


def test_a_raising_stream_fails_alone_with_two_workers(recordings, monkeypatch) -> None:
    original = StreamAnalyzer.push

    def push(self, first, frames, t_arrival=None):
        if self.info.stream == "s1" and first + len(frames) > 600:  # chunks may be joined
            raise RuntimeError("analyzer bug")
        return original(self, first, frames, t_arrival)

    config = EngineConfig(detector="classical")
    alone, _ = _serve({k: v for k, v in recordings.items() if k != "s1"}, 1, config)
    monkeypatch.setattr(StreamAnalyzer, "push", push)
    server, sink = _serve(recordings, 2, config)
    assert server.failed == {"s1": "RuntimeError: analyzer bug"} and server.n_failed == 1
    assert server.n_done == 3 and sink.stats["s1"][-1]["failed"] == "RuntimeError: analyzer bug"
    assert "s1" in sink.closed
    for name in ("s0", "s2"):  # the others lose nothing
        assert (_as_json(server.finished[name]["events"])
                == _as_json(alone.finished[name]["events"]))
        assert server.finished[name]["n_events"] > 0


def test_serve_takes_workers_on_the_command_line() -> None:
    import argparse

    from engine.commands.serve import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--workers", "2"]).workers == 2
    assert parser.parse_args([]).workers is None  # running_server: default_workers()
