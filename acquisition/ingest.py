"""Ingest: receive streams on a PULL socket, validate, account, record, hand to the engine.

One receive thread owns the socket. For every message it

1. validates it with :mod:`acquisition.wire` (errors are logged and counted per stream,
   or under ``"_unattributed"`` when no stream id could be read; serving continues);
2. does the sequence accounting per stream (gaps with their ranges, duplicates,
   out-of-order chunks) from each chunk's ``first``/``n``;
3. hands the chunk to the :class:`~acquisition.recorder.RawRecorder` -- *before* anything
   downstream can drop it (its writer thread writes chunks in order through a bounded queue;
   ``frames_recorded`` counts them once they are in the file);
4. puts a copy on a bounded queue with a named policy: ``"block"`` (backpressure through
   ZeroMQ to the publishers: analysis lags and catches up, nothing is skipped) or
   ``"fail"`` (the item is not queued, the error is counted as ``"queue_full"`` and the
   consumer's next :meth:`Ingest.get` raises :class:`IngestOverflow`; the raw recording
   still has the data).

The engine consumes :class:`StreamStarted`, :class:`ChunkReceived` (data shape
``(n, *shape)``, owned by the consumer) and :class:`StreamStopped` from :meth:`Ingest.get`.
A ``ChunkReceived`` may follow a gap (``first`` beyond the previous end) or fill one late
(``first`` before it); fully duplicate chunks are counted and not forwarded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import zmq

from acquisition.ingest_state import (
    ChunkReceived,
    IngestItem,
    StreamStarted,
    StreamState,
    StreamStats,
    StreamStopped,
)
from acquisition.recorder import RawRecorder
from acquisition.wire import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    ChunkHeader,
    StartHeader,
    StopHeader,
    WireError,
    decode_header,
    decode_payload,
)

__all__ = [
    "ChunkReceived", "Ingest", "IngestItem", "IngestOverflow", "StreamStarted", "StreamStats",
    "StreamStopped",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
UNATTRIBUTED = "_unattributed"
POLICIES = ("block", "fail")
DEFAULT_MAX_STREAM_BYTES = 1 << 40  # a chunk index beyond 1 TiB is a corrupt header


class IngestOverflow(RuntimeError):
    """The analysis queue was full under policy ``"fail"``."""


class Ingest:
    """Bound PULL socket + receive thread + per-stream accounting + raw recording.

    Parameters
    ----------
    endpoint
        Address to bind; ``tcp://127.0.0.1:0`` picks a free port (see :attr:`endpoint`).
    record_dir
        Directory for raw recordings (:class:`RawRecorder`); ``None`` disables recording.
    queue_size
        Bound of the analysis queue (items).
    policy
        ``"block"`` or ``"fail"`` when the queue is full (see module docstring).
    max_payload_bytes
        Larger payloads are rejected with code ``"oversize"``.
    rcvhwm
        Messages ZeroMQ buffers per connected publisher before pushing back.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        record_dir: str | Path | None = None,
        queue_size: int = 1024,
        policy: str = "block",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        context: zmq.Context | None = None,
        rcvhwm: int = 1000,
        poll_ms: int = 50,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
    ):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.max_payload_bytes = int(max_payload_bytes)
        self.max_stream_bytes = int(max_stream_bytes)
        self.recorder = RawRecorder(record_dir) if record_dir is not None else None
        self._queue: queue.Queue[tuple[StreamStats, IngestItem]] = queue.Queue(queue_size)
        self._streams: dict[str, StreamState] = {}  # running streams
        self._stats: dict[str, StreamStats] = {}
        self._cond = threading.Condition()
        self._overflow: IngestOverflow | None = None
        self._stopping = threading.Event()
        self._poll_ms = poll_ms
        self._socket = (context or zmq.Context.instance()).socket(zmq.PULL)
        self._socket.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if endpoint.startswith("tcp://") and "127.0.0.1" not in endpoint and "localhost" not in endpoint:
            log.warning("ingest bound to %s: reachable beyond localhost without CURVE", endpoint)
        self._thread = threading.Thread(target=self._receive_loop, name="castream-ingest", daemon=True)
        self._thread.start()
        log.info("ingest listening on %s (policy=%s, queue=%d)", self.endpoint, policy, queue_size)

    # -- consumer API -----------------------------------------------------------------
    def get(self, timeout_s: float | None = None) -> IngestItem | None:
        """Next item, or ``None`` after ``timeout_s``. Raises :class:`IngestOverflow` once
        after the queue overflowed under policy ``"fail"``."""
        if self._overflow is not None:
            overflow, self._overflow = self._overflow, None
            raise overflow
        try:
            stats, item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        with self._cond:
            stats.queue_depth -= 1
        return item

    def stats(self) -> dict[str, StreamStats]:
        """Snapshot of every stream's counters (``as_dict()`` for JSON)."""
        with self._cond:
            return {name: stats.snapshot() for name, stats in self._stats.items()}

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def wait_for(self, predicate: Callable[[dict[str, StreamStats]], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(stats)`` is true (re-checked after every message)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._stats), timeout=timeout_s)

    def wait_until_stopped(self, streams: Iterable[str] | int, timeout_s: float) -> bool:
        """Wait until the named streams (or any ``streams`` streams, given an int) have
        stopped and their recordings are written; ``False`` on timeout."""
        def done(stats: dict[str, StreamStats]) -> bool:
            finished = [
                name for name, s in stats.items()
                if s.state == "stopped" and (self.recorder is None or s.recording_done)
            ]
            if isinstance(streams, int):
                return len(finished) >= streams
            return set(streams) <= set(finished)

        streams = streams if isinstance(streams, int) else list(streams)
        return self.wait_for(done, timeout_s)

    def close(self) -> None:
        """Stop receiving, finish open recordings (as not stopped) and close the socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join()
        self._socket.close(linger=0)
        if self.recorder is not None:
            for stream in list(self._streams):
                self._finish_recording(self._streams[stream], None, stopped=False)
            self.recorder.close()

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- receive thread ---------------------------------------------------------------
    def _receive_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stopping.is_set():
            if not poller.poll(self._poll_ms):
                continue
            for _ in range(1024):  # drain what is there, then re-check for shutdown
                try:
                    frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self._handle(frames)

    def _handle(self, frames: list[zmq.Frame]) -> None:
        stream = None
        try:
            header = decode_header(frames[0].bytes)
            stream = header.stream
            self._check_frames(header, frames)
            if isinstance(header, StartHeader):
                self._on_start(header)
            elif isinstance(header, ChunkHeader):
                self._on_chunk(header, frames[1])
            else:
                self._on_stop(header)
        except WireError as exc:
            self._count_error(exc.stream or stream, exc.code, str(exc))
        except OSError as exc:
            self._count_error(stream, "record_failed", f"recording failed: {exc}")
        except Exception as exc:  # a bug must not stop the ingest serving other streams
            log.exception("internal error handling a message")
            self._count_error(stream, "internal", repr(exc))

    def _check_frames(self, header: Any, frames: list[zmq.Frame]) -> None:
        if len(frames) != 2:
            raise WireError("bad_frames", f"expected [header, payload], got {len(frames)} frames",
                            header.stream)
        size = frames[1].buffer.nbytes
        if size > self.max_payload_bytes:
            raise WireError("oversize", f"payload of {size} bytes exceeds limit "
                            f"{self.max_payload_bytes}", header.stream)
        if size and not isinstance(header, ChunkHeader):
            raise WireError("bad_frames", f"{header.kind} message must have an empty payload, "
                            f"got {size} bytes", header.stream)

    def _on_start(self, header: StartHeader) -> None:
        if header.stream in self._streams:
            raise WireError("restart", f"stream {header.stream!r} is already running; start "
                            "ignored (send stop first)", header.stream)
        base = self.recorder.open_stream(header) if self.recorder is not None else None
        with self._cond:
            stats = self._stats.get(header.stream)
            if stats is None or stats.state == "stopped":
                stats = self._stats[header.stream] = StreamStats(header.stream)
            stats.state, stats.last_receive_s = "running", time.time()
            stats.messages += 1
            stats.recording = None if base is None else str(base)
        self._streams[header.stream] = StreamState(header, stats)
        log.info("stream %r started: %s %s %s", header.stream, header.mode, header.dtype,
                 list(header.shape))
        self._enqueue(StreamStarted(header), stats)

    def _on_chunk(self, header: ChunkHeader, payload: zmq.Frame) -> None:
        t_received = time.perf_counter()
        state = self._running(header.stream, "chunk")
        data = decode_payload(header, state.header, payload.buffer, self.max_payload_bytes)
        if (header.first + header.n) * state.header.item_bytes > self.max_stream_bytes:
            raise WireError("sequence", f"chunk first={header.first} lies beyond the stream "
                            f"size limit of {self.max_stream_bytes} bytes", header.stream)
        with self._cond:
            new, duplicate = state.account(header.first, header.n)
            self._update_received(state.stats, new, duplicate)
        if new == 0:
            log.warning("stream %r: duplicate chunk first=%d n=%d dropped", header.stream,
                        header.first, header.n)
            return
        if self.recorder is not None:
            self.recorder.write(header.stream, header.first, header.n, payload.buffer,
                                on_written=lambda: self._count_recorded(state.stats, new))
        self._enqueue(ChunkReceived(header, data.copy(), t_received), state.stats)

    def _on_stop(self, header: StopHeader) -> None:
        state = self._running(header.stream, "stop")
        del self._streams[header.stream]
        if self.recorder is not None:
            self.recorder.flush()  # so the stop's counters include every recorded chunk
        with self._cond:
            stats = state.stats
            stats.messages += 1
            stats.last_receive_s = time.time()
            stats.n_total_declared = header.n_total
            if header.n_total is not None and header.n_total > state.next_first:
                stats.gap_ranges.append([state.next_first, header.n_total])
            stats.missing_frames = sum(end - start for start, end in stats.gap_ranges)
            snapshot = stats.snapshot()
        snapshot.state = "stopped"
        if stats.missing_frames:
            log.warning("stream %r stopped with %d missing items in ranges %s", header.stream,
                        stats.missing_frames, stats.gap_ranges)
        self._finish_recording(state, header.n_total, stopped=True)
        self._enqueue(StreamStopped(header, snapshot), stats)
        with self._cond:  # "stopped" once the stop is handed on (or counted as not queued)
            stats.state = "stopped"
            self._cond.notify_all()

    def _running(self, stream: str, kind: str) -> StreamState:
        state = self._streams.get(stream)
        if state is None:
            raise WireError("unknown_stream", f"{kind} for stream {stream!r}, which is not "
                            "running (no start received, or already stopped)", stream)
        return state

    def _update_received(self, stats: StreamStats, new: int, duplicate: int) -> None:
        stats.messages += 1
        stats.frames_received += new
        stats.duplicates += duplicate
        stats.missing_frames = sum(end - start for start, end in stats.gap_ranges)
        stats.last_receive_s = time.time()
        self._cond.notify_all()

    def _count_recorded(self, stats: StreamStats, n: int) -> None:
        with self._cond:
            stats.frames_recorded += n
            self._cond.notify_all()

    def _finish_recording(self, state: StreamState, n_total: int | None, stopped: bool) -> None:
        if self.recorder is None or not self.recorder.is_recording(state.header.stream):
            return
        future = self.recorder.finish(state.header.stream, n_total, stopped=stopped)
        stats = state.stats

        def mark_done(_future: Any) -> None:
            if _future.exception() is not None:
                self._count_error(stats.stream, "record_failed", f"{_future.exception()}")
            with self._cond:
                stats.recording_done = True
                self._cond.notify_all()

        future.add_done_callback(mark_done)

    def _enqueue(self, item: IngestItem, stats: StreamStats) -> None:
        with self._cond:
            stats.queue_depth += 1
        if self.policy == "fail":
            try:
                self._queue.put_nowait((stats, item))
            except queue.Full:
                with self._cond:
                    stats.queue_depth -= 1
                message = (f"analysis queue full ({self._queue.maxsize} items, policy=fail): "
                           f"{type(item).__name__} of stream {stats.stream!r} not queued "
                           "(it is in the raw recording)")
                self._overflow = IngestOverflow(message)
                self._count_error(stats.stream, "queue_full", message)
            return
        while not self._stopping.is_set():  # block: backpressure, re-checking for shutdown
            try:
                self._queue.put((stats, item), timeout=0.1)
                return
            except queue.Full:
                continue

    def _count_error(self, stream: str | None, code: str, message: str) -> None:
        name = stream or UNATTRIBUTED
        log.error("ingest error [%s] stream=%s: %s", code, name, message)
        with self._cond:
            stats = self._stats.setdefault(name, StreamStats(name))
            stats.errors_by_code[code] = stats.errors_by_code.get(code, 0) + 1
            stats.last_receive_s = time.time()
            self._cond.notify_all()
