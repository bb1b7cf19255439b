"""Ingest: receive streams on a ROUTER socket, validate, account, record, acknowledge, hand on.

One receive thread owns the socket. Publishers connect DEALER sockets (wire version 2); a
stream belongs to the connection that started it. For every message it

1. validates it with :mod:`acquisition.wire` and the ingest's limits (message size, frame
   size, gap size, concurrent streams, ownership); a bad message is refused back to its
   sender with a specific code, logged (rate-limited) and counted per stream, or under
   ``"_unattributed"`` when no stream id could be read; serving continues;
2. does the sequence accounting per stream (gaps with their ranges, duplicates,
   out-of-order chunks) from each chunk's ``first``/``n``;
3. hands the chunk to the :class:`~acquisition.recorder.RawRecorder` -- *before* anything
   downstream can drop it (its writer thread writes chunks in order through a bounded queue;
   ``frames_recorded`` counts them once they are in the file);
4. puts a read-only view of the message (no copy) on a bounded queue with a named policy:
   ``"block"`` (backpressure through ZeroMQ to the publishers: analysis lags and catches
   up, nothing is skipped) or ``"fail"`` (the item is not queued, the error is counted as
   ``"queue_full"`` and the consumer's next :meth:`Ingest.get` raises
   :class:`IngestOverflow`; the raw recording still has the data).
5. acknowledges (:mod:`acquisition.ingest_replies`): once a chunk is in the recording (or
   received, without recording) the publisher gets an ``ack`` with the stream's counts; a
   failed recording fails the stream, is refused back at once and its later chunks are
   refused (never analysed-and-forgotten); the stop is acknowledged once the recording is
   synced and closed.

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

from acquisition.curve import CurveError, make_curve_server
from acquisition.ingest_checks import (
    check_frames,
    check_image_chunk,
    check_position,
    check_start,
    count_nonfinite,
)
from acquisition.ingest_idle import (
    ABANDONED,
    CHECK_EVERY_S,
    abandoned_message,
    idle_streams,
)
from acquisition.ingest_peers import INCOMPATIBLE_PEER, PeerMonitor
from acquisition.ingest_replies import ReplyBook
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
    MAX_HEADER_BYTES,
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
DEFAULT_MAX_GAP_BYTES = 256 * 1024 * 1024  # a larger jump ahead is refused, not zero-filled
DEFAULT_MAX_STREAMS = 256  # concurrent running streams (each holds 2 open files)
MAX_TRACKED_STREAMS = 4096  # counters kept; beyond, stopped ones are forgotten (oldest first)
HEARTBEAT_S = 1.0
_LOG_FIRST_ERRORS = 5  # per (stream, code); then one line per _LOG_EVERY_S
_LOG_EVERY_S = 10.0


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
    max_gap_bytes
        A chunk further than this ahead of the stream's end is refused (``gap_too_large``).
    max_streams
        Concurrent running streams; another start is refused (``too_many_streams``).
    stream_idle_timeout_s
        A running stream without any message for this long is closed as *abandoned*
        (:mod:`acquisition.ingest_idle`); ``None`` or 0: never.
    curve_dir
        A key folder (:mod:`acquisition.curve`): the socket is a CURVE server that accepts
        only the clients on the folder's allow-list.

    Messages larger than twice ``max_payload_bytes`` make ZeroMQ drop the connection
    (``MAXMSGSIZE``); between the two limits they are refused as ``oversize``.
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
        max_gap_bytes: int = DEFAULT_MAX_GAP_BYTES,
        max_streams: int = DEFAULT_MAX_STREAMS,
        stream_idle_timeout_s: float | None = None,
        curve_dir: str | Path | None = None,
    ):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.max_payload_bytes = int(max_payload_bytes)
        self.max_stream_bytes = int(max_stream_bytes)
        self.max_gap_bytes = int(max_gap_bytes)
        self.max_streams = int(max_streams)
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self._blocked_s = 0.0  # last time the receive thread waited on a full queue
        self._idle_checked_s = 0.0
        self.recorder = RawRecorder(record_dir) if record_dir is not None else None
        self._queue: queue.Queue[tuple[StreamStats, IngestItem]] = queue.Queue(queue_size)
        self._streams: dict[str, StreamState] = {}  # running streams
        self._stats: dict[str, StreamStats] = {}
        self._error_totals: dict[str, int] = {}  # every error ever counted, by code
        self._cond = threading.Condition()
        self._overflow: IngestOverflow | None = None
        self._stopping = threading.Event()
        self._poll_ms = poll_ms
        self._logged: dict[tuple[str, str], list[float]] = {}  # (stream, code) -> [n, t_last]
        context = context or zmq.Context.instance()
        self._socket = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.RCVHWM, int(rcvhwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_payload_bytes + MAX_HEADER_BYTES)
        try:
            if curve_dir is not None:
                make_curve_server(self._socket, curve_dir)
            self._socket.bind(endpoint)
        except (zmq.ZMQError, CurveError):
            self._socket.close(linger=0)
            if self.recorder is not None:
                self.recorder.close()
            raise
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._replies = ReplyBook(context, self._socket, self._cond, self.recorder is not None)
        self._peers = PeerMonitor(self._socket)
        if (curve_dir is None and endpoint.startswith("tcp://") and "127.0.0.1" not in endpoint
                and "localhost" not in endpoint):
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

    def error_totals(self) -> dict[str, int]:
        """Every error counted since the ingest started, by code (never forgotten, unlike
        the counters of long-gone stream ids)."""
        with self._cond:
            return dict(self._error_totals)

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
        if self.recorder is not None:
            for stream in list(self._streams):
                self._finish_recording(self._streams[stream], None, stopped=False)
            self.recorder.close()
        self._replies.close()
        self._peers.close()
        self._socket.close(linger=0)

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- receive thread ---------------------------------------------------------------
    def _receive_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._replies.wake_socket, zmq.POLLIN)
        poller.register(self._peers.monitor, zmq.POLLIN)
        while not self._stopping.is_set():
            ready = dict(poller.poll(self._poll_ms))
            if self._peers.monitor in ready:
                for _ in range(self._peers.failed_handshakes()):
                    self._count_error(None, "incompatible_peer", INCOMPATIBLE_PEER)
            if self._socket in ready:
                for count in range(1024):  # drain what is there, then re-check for shutdown
                    try:
                        frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(frames)
                    if count % 64 == 63:
                        self._replies.send_due()
            self._replies.send_due()
            self._replies.heartbeat(self._streams.values(), HEARTBEAT_S)
            self._close_idle_streams()

    def _close_idle_streams(self) -> None:
        now = time.time()
        if now - self._idle_checked_s < CHECK_EVERY_S:
            return
        self._idle_checked_s = now
        for state in idle_streams(list(self._streams.values()), now,
                                  self.stream_idle_timeout_s, self._blocked_s):
            self._abandon(state)

    def _abandon(self, state: StreamState) -> None:
        """Close a silent stream like a stop without ``n_total``, marked abandoned."""
        name = state.header.stream
        self._count_error(name, ABANDONED, abandoned_message(name, self.stream_idle_timeout_s))
        del self._streams[name]
        if self.recorder is not None:
            self.recorder.flush()
        with self._cond:
            state.stats.abandoned = True
            snapshot = state.stats.snapshot()
        snapshot.state = "stopped"
        self._finish_recording(state, None, stopped=False)
        self._enqueue(StreamStopped(StopHeader(name, state.acked_seq + 1), snapshot),
                      state.stats)
        with self._cond:
            state.stats.state = "stopped"
            self._cond.notify_all()

    def _handle(self, frames: list[zmq.Frame]) -> None:
        identity, parts = frames[0].bytes, frames[1:]
        stream = seq = None
        try:
            if not parts:
                raise WireError("bad_frames", "empty message")
            header = decode_header(parts[0].bytes)
            stream, seq = header.stream, header.seq
            check_frames(header, parts, self.max_payload_bytes)
            if isinstance(header, StartHeader):
                self._on_start(identity, header)
            elif isinstance(header, ChunkHeader):
                self._on_chunk(identity, header, parts[1])
            else:
                self._on_stop(identity, header)
        except WireError as exc:
            self._refuse(identity, exc.stream or stream, seq, exc.code, str(exc))
        except OSError as exc:
            self._refuse(identity, stream, seq, "record_failed", f"recording failed: {exc}")
        except Exception as exc:  # a bug must not stop the ingest serving other streams
            log.exception("internal error handling a message")
            self._refuse(identity, stream, seq, "internal", repr(exc))

    def _refuse(self, identity: bytes, stream: str | None, seq: int | None, code: str,
                message: str) -> None:
        self._count_error(stream, code, message)
        self._replies.refuse(identity, stream, seq, code, message)

    def _on_start(self, identity: bytes, header: StartHeader) -> None:
        check_start(header, self._streams, self.max_streams, self.max_payload_bytes)
        base = self.recorder.open_stream(header) if self.recorder is not None else None
        with self._cond:
            stats = self._stats.get(header.stream)
            if stats is None or stats.state == "stopped":
                stats = self._new_stats(header.stream)
            stats.state, stats.last_receive_s = "running", time.time()
            stats.messages += 1
            stats.recording = None if base is None else str(base)
        state = StreamState(header, stats, owner=identity)
        self._streams[header.stream] = state
        log.info("stream %r started: %s %s %s", header.stream, header.mode, header.dtype,
                 list(header.shape))
        self._replies.done(state, header.seq, wake=False)
        self._enqueue(StreamStarted(header), stats)

    def _on_chunk(self, identity: bytes, header: ChunkHeader, payload: zmq.Frame) -> None:
        t_received = time.perf_counter()
        state = self._running(header.stream, "chunk", identity)
        if state.failure is not None:
            raise WireError(state.failure[0], f"stream {header.stream!r} failed earlier and "
                            f"takes no more data: {state.failure[1]}", header.stream)
        data = decode_payload(header, state.header, payload.buffer, self.max_payload_bytes)
        check_position(state, header, self.max_stream_bytes, self.max_gap_bytes)
        if state.header.stream_kind.is_image:
            check_image_chunk(state, header, data)
        with self._cond:
            new, duplicate = state.account(header.first, header.n)
            self._update_received(state.stats, new, duplicate)
        if new == 0:
            self._log_limited(header.stream, "duplicate", f"duplicate chunk first={header.first} "
                              f"n={header.n} dropped", logging.WARNING)
            self._after_recorded(state, header.seq)
            return
        self._check_finite(state, data)
        if self.recorder is not None:
            self.recorder.write(
                header.stream, header.first, header.n, payload.buffer,
                on_written=lambda: self._count_recorded(state, new, header.seq),
                on_failed=lambda exc: self._record_failed(state, exc))
        else:
            self._replies.done(state, header.seq, wake=False)
        # no copy: ``data`` is a read-only view of the received message, which stays alive
        # while the analysis holds it (the recorder writes from the same memory)
        self._enqueue(ChunkReceived(header, data, t_received), state.stats)

    def _check_finite(self, state: StreamState, data: Any) -> None:
        bad = count_nonfinite(data)
        if bad:
            with self._cond:
                state.stats.nonfinite_values += bad
            self._log_limited(state.header.stream, "nonfinite", f"{bad} NaN/Inf values in a "
                              f"chunk ({state.stats.nonfinite_values} so far); recorded as sent",
                              logging.WARNING)

    def _after_recorded(self, state: StreamState, seq: int) -> None:
        """Acknowledge ``seq`` once everything queued before it is in the recording."""
        if self.recorder is None:
            self._replies.done(state, seq, wake=False)
        else:
            self.recorder.after_writes(lambda: self._replies.done(state, seq))

    def _on_stop(self, identity: bytes, header: StopHeader) -> None:
        state = self._running(header.stream, "stop", identity)
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
                stats.missing_frames += header.n_total - state.next_first
            snapshot = stats.snapshot()
        snapshot.state = "stopped"
        if stats.missing_frames:
            log.warning("stream %r stopped with %d missing items in ranges %s", header.stream,
                        stats.missing_frames, stats.gap_ranges)
        self._finish_recording(state, header.n_total, stopped=True, seq=header.seq)
        self._enqueue(StreamStopped(header, snapshot), stats)
        with self._cond:  # "stopped" once the stop is handed on (or counted as not queued)
            stats.state = "stopped"
            self._cond.notify_all()

    def _running(self, stream: str, kind: str, identity: bytes) -> StreamState:
        state = self._streams.get(stream)
        if state is None and getattr(self._stats.get(stream), "abandoned", False):
            raise WireError(ABANDONED, abandoned_message(stream, self.stream_idle_timeout_s),
                            stream)
        if state is None:
            raise WireError("unknown_stream", f"{kind} for stream {stream!r}, which is not "
                            "running (no start received, the receiver restarted, or already "
                            "stopped)", stream)
        if state.owner != identity:
            raise WireError("foreign_stream", f"{kind} for stream {stream!r} from a connection "
                            "that did not start it; refused", stream)
        return state

    def _update_received(self, stats: StreamStats, new: int, duplicate: int) -> None:
        stats.messages += 1
        stats.frames_received += new
        stats.duplicates += duplicate
        stats.last_receive_s = time.time()
        self._cond.notify_all()

    def _record_failed(self, state: StreamState, exc: OSError) -> None:
        """Writer thread: a chunk could not be written; the stream fails, its owner is told."""
        message = f"recording {state.stats.recording} failed: {exc}"
        self._count_error(state.header.stream, "record_failed", message)
        self._replies.fail(state, "record_failed", message)

    def _count_recorded(self, state: StreamState, n: int, seq: int) -> None:
        with self._cond:
            state.stats.frames_recorded += n
            self._cond.notify_all()
        self._replies.done(state, seq)

    def _finish_recording(self, state: StreamState, n_total: int | None, stopped: bool,
                          seq: int | None = None) -> None:
        if self.recorder is None or not self.recorder.is_recording(state.header.stream):
            if seq is not None:
                self._replies.done(state, seq, final=True, wake=False)
            return

        def closed(error: OSError | None) -> None:
            if error is not None:
                self._replies.fail(state, "record_failed", f"closing the recording failed: "
                                   f"{error}")
            if seq is not None:
                self._replies.done(state, seq, final=True)

        future = self.recorder.finish(state.header.stream, n_total, stopped=stopped,
                                      on_closed=closed)
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
            except queue.Full:  # acks and heartbeats go on: publishers wait, not time out
                self._blocked_s = time.time()  # publishers cannot send: nobody is idle
                self._replies.send_due()
                self._replies.heartbeat(self._streams.values(), HEARTBEAT_S)

    def _count_error(self, stream: str | None, code: str, message: str) -> None:
        # logged first: whoever waits for the counter finds the line already written
        known = stream in self._streams  # unknown ids share one log budget per code
        self._log_limited(stream if known else "*", code, message, logging.ERROR)
        with self._cond:
            stats = self._stats.get(stream or UNATTRIBUTED)
            if stats is None:
                stats = self._new_stats(stream or UNATTRIBUTED)
            stats.errors_by_code[code] = stats.errors_by_code.get(code, 0) + 1
            stats.last_receive_s = time.time()
            self._error_totals[code] = self._error_totals.get(code, 0) + 1
            self._cond.notify_all()

    def _new_stats(self, name: str) -> StreamStats:
        """Counters for a new stream id (caller holds the lock); memory stays bounded: past
        MAX_TRACKED_STREAMS the oldest stopped or never-started ids are forgotten, and when
        none can be, new ids are counted under ``_unattributed``."""
        if len(self._stats) >= MAX_TRACKED_STREAMS:  # forget the oldest eighth at once
            idle = [old for old, stats in self._stats.items()
                    if old != UNATTRIBUTED and stats.state != "running"]
            for old in idle[: max(1, MAX_TRACKED_STREAMS // 8)]:
                del self._stats[old]
            if not idle:
                name = UNATTRIBUTED
        stats = self._stats.get(name)
        if stats is None or stats.state == "stopped":
            stats = self._stats[name] = StreamStats(name)
        return stats

    def _log_limited(self, stream: str, code: str, message: str, level: int) -> None:
        """Log the first few of each (stream, code), then one line per 10 s with a count."""
        if len(self._logged) > MAX_TRACKED_STREAMS:
            self._logged.clear()
        entry = self._logged.setdefault((stream, code), [0, 0.0])
        entry[0] += 1
        now = time.monotonic()
        if entry[0] <= _LOG_FIRST_ERRORS or now - entry[1] >= _LOG_EVERY_S:
            more = f" ({entry[0]} so far)" if entry[0] > _LOG_FIRST_ERRORS else ""
            log.log(level, "ingest [%s] stream=%s: %s%s", code, stream, message, more)
            entry[1] = now
