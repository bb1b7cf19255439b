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
   downstream can drop it (:mod:`acquisition.ingest_recording`; ``frames_recorded`` counts
   them once they are in the file);
4. puts a read-only view of the message (no copy) on the bounded analysis queue, whose policy
   when full is ``"block"`` (backpressure) or ``"fail"`` (:class:`IngestOverflow`; the raw
   recording still has the data) -- :mod:`acquisition.ingest_queue`;
5. acknowledges (:mod:`acquisition.ingest_replies`): once a chunk is in the recording (or
   received, without recording) the publisher gets an ``ack`` with the stream's counts; a
   failed recording fails the stream, is refused back at once and its later chunks are
   refused (never analysed-and-forgotten); the stop is acknowledged once the recording is
   synced and closed.

Counters, error totals and rate-limited logs are :mod:`acquisition.ingest_counters`.

The engine consumes :class:`StreamStarted`, :class:`ChunkReceived` (data shape
``(n, *shape)``, owned by the consumer) and :class:`StreamStopped` from :meth:`Ingest.get`.
A ``ChunkReceived`` may follow a gap (``first`` beyond the previous end) or fill one late
(``first`` before it); fully duplicate chunks are counted and not forwarded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import zmq

from acquisition.curve import CurveError, make_curve_server
from acquisition.ingest_checks import (
    check_chunk,
    check_frames,
    check_running,
    check_start,
    count_nonfinite,
)
from acquisition.ingest_counters import IngestCounters
from acquisition.ingest_idle import ABANDONED, CHECK_EVERY_S, abandoned_message, idle_streams
from acquisition.ingest_peers import INCOMPATIBLE_PEER, PeerMonitor
from acquisition.ingest_queue import AnalysisQueue, IngestOverflow
from acquisition.ingest_recording import RecordingAcks
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
)

__all__ = [
    "ChunkReceived", "Ingest", "IngestItem", "IngestOverflow", "StreamStarted", "StreamStats",
    "StreamStopped",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_MAX_STREAM_BYTES = 1 << 40  # a chunk index beyond 1 TiB is a corrupt header
DEFAULT_MAX_GAP_BYTES = 256 * 1024 * 1024  # a larger jump ahead is refused, not zero-filled
DEFAULT_MAX_STREAMS = 256  # concurrent running streams (each holds 2 open files)
HEARTBEAT_S = 1.0


class Ingest:
    """Bound ROUTER socket + receive thread + per-stream accounting + raw recording.

    Parameters
    ----------
    endpoint
        Address to bind; ``tcp://127.0.0.1:0`` picks a free port (see :attr:`endpoint`).
    record_dir
        Directory for raw recordings (:class:`RawRecorder`); ``None`` disables recording.
    queue_size
        Bound of the analysis queue (items).
    policy
        ``"block"`` or ``"fail"`` when the queue is full (:mod:`acquisition.ingest_queue`).
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
        self._streams: dict[str, StreamState] = {}  # running streams
        self._counters = IngestCounters(self._streams)
        self._cond = self._counters.cond
        self._stopping = threading.Event()
        self._queue = AnalysisQueue(queue_size, policy, self._counters, self._stopping,
                                    self._while_blocked)
        self.policy = policy
        self.max_payload_bytes = int(max_payload_bytes)
        self.max_stream_bytes = int(max_stream_bytes)
        self.max_gap_bytes = int(max_gap_bytes)
        self.max_streams = int(max_streams)
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self._blocked_s = 0.0  # last time the receive thread waited on a full queue
        self._idle_checked_s = 0.0
        self.recorder = RawRecorder(record_dir) if record_dir is not None else None
        self._poll_ms = poll_ms
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
        self._recording = RecordingAcks(self.recorder, self._replies, self._counters)
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
        return self._queue.get(timeout_s)

    def stats(self) -> dict[str, StreamStats]:
        """Snapshot of every stream's counters (``as_dict()`` for JSON)."""
        return self._counters.snapshot()

    def error_totals(self) -> dict[str, int]:
        """Every error counted since the ingest started, by code (never forgotten, unlike
        the counters of long-gone stream ids)."""
        return self._counters.error_totals()

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def wait_for(self, predicate: Callable[[dict[str, StreamStats]], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(stats)`` is true (re-checked after every message)."""
        return self._counters.wait_for(predicate, timeout_s)

    def wait_until_stopped(self, streams: Iterable[str] | int, timeout_s: float) -> bool:
        """Wait until the named streams (or any ``streams`` streams, given an int) have
        stopped and their recordings are written; ``False`` on timeout."""
        return self._counters.wait_until_stopped(streams, timeout_s, self.recorder is not None)

    def close(self) -> None:
        """Stop receiving, finish open recordings (as not stopped) and close the socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join()
        if self.recorder is not None:
            for stream in list(self._streams):
                self._recording.finish(self._streams[stream], None, stopped=False)
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
                    self._counters.count_error(None, "incompatible_peer", INCOMPATIBLE_PEER)
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

    def _while_blocked(self) -> None:
        """The analysis queue is full: acknowledgements and heartbeats go on (publishers
        wait, not time out), and no stream counts as idle (publishers cannot send)."""
        self._blocked_s = time.time()
        self._replies.send_due()
        self._replies.heartbeat(self._streams.values(), HEARTBEAT_S)

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
        message = abandoned_message(name, self.stream_idle_timeout_s)
        self._counters.count_error(name, ABANDONED, message)
        self._close(state, StopHeader(name, state.acked_seq + 1), abandoned=True)

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
        self._counters.count_error(stream, code, message)
        self._replies.refuse(identity, stream, seq, code, message)

    def _on_start(self, identity: bytes, header: StartHeader) -> None:
        check_start(header, self._streams, self.max_streams, self.max_payload_bytes)
        base = self.recorder.open_stream(header) if self.recorder is not None else None
        stats = self._counters.started(header.stream, None if base is None else str(base))
        state = StreamState(header, stats, owner=identity)
        self._streams[header.stream] = state
        log.info("stream %r started: %s %s %s", header.stream, header.mode, header.dtype,
                 list(header.shape))
        self._replies.done(state, header.seq, wake=False)
        self._queue.put(StreamStarted(header), stats)

    def _on_chunk(self, identity: bytes, header: ChunkHeader, payload: zmq.Frame) -> None:
        t_received = time.perf_counter()
        state = self._running(header.stream, "chunk", identity)
        data = check_chunk(state, header, payload.buffer, self.max_payload_bytes,
                           self.max_stream_bytes, self.max_gap_bytes)
        with self._cond:
            new, duplicate = state.account(header.first, header.n)
            self._counters.update_received(state.stats, new, duplicate)
        if new == 0:
            self._counters.log_limited(header.stream, "duplicate", f"duplicate chunk "
                                       f"first={header.first} n={header.n} dropped",
                                       logging.WARNING)
            self._recording.after_recorded(state, header.seq)
            return
        self._check_finite(state, data)
        self._recording.write(state, header, payload.buffer, new)
        # no copy: ``data`` is a read-only view of the received message, which stays alive
        # while the analysis holds it (the recorder writes from the same memory)
        self._queue.put(ChunkReceived(header, data, t_received), state.stats)

    def _check_finite(self, state: StreamState, data: Any) -> None:
        bad = count_nonfinite(data)
        if bad:
            with self._cond:
                state.stats.nonfinite_values += bad
            self._counters.log_limited(
                state.header.stream, "nonfinite", f"{bad} NaN/Inf values in a chunk "
                f"({state.stats.nonfinite_values} so far); recorded as sent", logging.WARNING)

    def _on_stop(self, identity: bytes, header: StopHeader) -> None:
        self._close(self._running(header.stream, "stop", identity), header)

    def _close(self, state: StreamState, stop: StopHeader, abandoned: bool = False) -> None:
        """End a running stream by its ``stop``, or as ``abandoned`` (``stop`` made up here:
        not a message, no ``n_total``, not acknowledged, recording finished as not stopped)."""
        del self._streams[stop.stream]
        self._recording.flush()  # so the stop's counters include every recorded chunk
        with self._cond:
            stats = state.stats
            if abandoned:
                stats.abandoned = True
            else:
                stats.messages += 1
                stats.last_receive_s = time.time()
                stats.n_total_declared = stop.n_total
            if stop.n_total is not None and stop.n_total > state.next_first:
                stats.gap_ranges.append([state.next_first, stop.n_total])
                stats.missing_frames += stop.n_total - state.next_first
            snapshot = stats.snapshot()
        snapshot.state = "stopped"
        if stats.missing_frames and not abandoned:
            log.warning("stream %r stopped with %d missing items in ranges %s", stop.stream,
                        stats.missing_frames, stats.gap_ranges)
        self._recording.finish(state, stop.n_total, stopped=not abandoned,
                               seq=None if abandoned else stop.seq)
        self._queue.put(StreamStopped(stop, snapshot), stats)
        with self._cond:  # "stopped" once the stop is handed on (or counted as not queued)
            stats.state = "stopped"
            self._cond.notify_all()

    def _running(self, stream: str, kind: str, identity: bytes) -> StreamState:
        abandoned = getattr(self._counters.by_stream.get(stream), "abandoned", False)
        return check_running(self._streams, stream, kind, identity, abandoned,
                             self.stream_idle_timeout_s)
