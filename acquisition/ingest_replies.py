"""Acknowledgements and refusals the ingest owes its publishers (wire version 2).

Any thread may mark progress of a stream (:meth:`ReplyBook.done` from the receive thread, the
recorder's writer thread or its converter; :meth:`ReplyBook.fail`); only the ingest's receive
thread owns the ROUTER socket and sends (:meth:`ReplyBook.send_due`). Other threads wake it
through an ``inproc`` socket, at most once per round of replies, so that acknowledgements of
recorded chunks go out at once without a message per chunk.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable

import zmq

from acquisition.ingest_state import StreamState
from acquisition.wire import encode_reply

log = logging.getLogger(__name__)

_WAKE_IDS = itertools.count()
MAX_RANGES_PER_ACK = 64  # missing ranges listed in one ack (the count covers all)


class ReplyBook:
    """Pending acknowledgements per stream, sent on the ingest's ROUTER socket.

    Parameters
    ----------
    context
        ZeroMQ context of the ingest (for the ``inproc`` wake-up pair).
    socket
        The ingest's ROUTER socket; used only from the receive thread.
    lock
        The ingest's lock over the per-stream counters (read to fill each ack).
    recording
        Whether the receiver records (told to publishers in every ack).
    """

    def __init__(self, context: zmq.Context, socket: zmq.Socket, lock: threading.Condition,
                 recording: bool) -> None:
        self._socket = socket
        self._stats_lock = lock
        self._recording = recording
        self._lock = threading.Lock()
        self._due: dict[int, StreamState] = {}
        self._woken = False
        address = f"inproc://castream-ingest-wake-{next(_WAKE_IDS)}"
        self.wake_socket = context.socket(zmq.PULL)  # polled by the receive thread
        self.wake_socket.bind(address)
        self._wake_tx = context.socket(zmq.PUSH)
        self._wake_tx.setsockopt(zmq.LINGER, 0)
        self._wake_tx.connect(address)
        self._last_heartbeat = time.monotonic()

    # -- any thread ---------------------------------------------------------------------
    def done(self, state: StreamState, seq: int, final: bool = False, wake: bool = True) -> None:
        """Every message of ``state``'s stream up to ``seq`` is handled (and recorded)."""
        with self._lock:
            state.acked_seq = max(state.acked_seq, seq)
            state.final = state.final or final
            self._mark_due(state, wake)

    def fail(self, state: StreamState, code: str, message: str, wake: bool = True) -> None:
        """The stream cannot go on (e.g. its recording failed): refuse its later chunks."""
        with self._lock:
            if state.failure is None:
                state.failure = (code, message)
                state.stats.failure = f"{code}: {message}"
            self._mark_due(state, wake)

    def _mark_due(self, state: StreamState, wake: bool) -> None:
        self._due[id(state)] = state
        if wake and not self._woken:
            self._woken = True
            try:
                self._wake_tx.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:  # closed or full: the receive loop polls anyway
                pass

    # -- receive thread -----------------------------------------------------------------
    def send_due(self) -> None:
        """Send the acks (and first refusals) that became due; drains the wake-ups."""
        while True:
            try:
                self.wake_socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        with self._lock:
            due, self._due, self._woken = list(self._due.values()), {}, False
        for state in due:
            self._send_state(state)

    def heartbeat(self, states: Iterable[StreamState], interval_s: float) -> None:
        """Re-send every running stream's ack at most every ``interval_s`` (a publisher
        waiting for credit learns that the receiver is alive, only busy)."""
        now = time.monotonic()
        if now - self._last_heartbeat < interval_s:
            return
        self._last_heartbeat = now
        for state in list(states):
            self._send_state(state)

    def refuse(self, identity: bytes, stream: str | None, seq: int | None, code: str,
               message: str) -> None:
        """Tell the sender of one message that it was not accepted."""
        self._send(identity, encode_reply("refused", stream, seq, code=code, message=message))

    def close(self) -> None:
        self._wake_tx.close(linger=0)
        self.wake_socket.close(linger=0)

    def _send_state(self, state: StreamState) -> None:
        if state.failure is not None and not state.failure_sent:
            state.failure_sent = True
            self.refuse(state.owner, state.header.stream, None, *state.failure)
        with self._stats_lock:
            stats = state.stats
            fields = {"received": stats.frames_received, "recorded": stats.frames_recorded,
                      "recording": self._recording, "missing_frames": stats.missing_frames,
                      "missing": [list(g) for g in stats.gap_ranges[:MAX_RANGES_PER_ACK]],
                      "final": state.final, "failure": stats.failure,
                      "path": stats.recording}
        self._send(state.owner, encode_reply("ack", state.header.stream, state.acked_seq, **fields))

    def _send(self, identity: bytes, reply: bytes) -> None:
        try:
            self._socket.send_multipart([identity, reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or not reading: it learns by its timeout
            log.debug("reply to %r not sent: %s", identity, exc)
