"""A publisher's connection to the ingest: one DEALER socket, credit, and the receiver's replies.

The ingest answers every message it has handled (wire version 2): an ``ack`` with the stream's
counts once the message is handled (recorded, when it records), or ``refused`` with a code.
:class:`PublisherLink` numbers the messages it sends (``seq``), keeps at most ``max_in_flight``
of them unacknowledged (credit-based flow control: a slow receiver slows the publisher down),
turns a refusal into :class:`~acquisition.delivery.PublisherRefused` at the next call and a
receiver silent for ``ack_timeout_ms`` (none listening, crashed, restarted) into
:class:`~acquisition.delivery.PublisherTimeout`. What the messages contain is the
:class:`~acquisition.publisher.Publisher`'s business.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import zmq

from acquisition.curve import CurveClient
from acquisition.delivery import PublisherRefused, PublisherTimeout
from acquisition.wire import WireError, decode_reply

_REPLY_CHECK_EVERY = 16  # messages between looks at the receiver's replies (refusals, acks)


class PublisherLink:
    """The DEALER socket of one publisher, connected to ``endpoint``.

    ``sent()`` says how many lines/frames the publisher has sent (for the messages of the
    errors). See :class:`~acquisition.publisher.Publisher` for the other parameters.
    """

    def __init__(self, endpoint: str, stream: str, sent: Callable[[], int],
                 context: zmq.Context | None, send_timeout_ms: int | None, sndhwm: int,
                 ack_timeout_ms: int, max_in_flight: int, curve: CurveClient | None) -> None:
        self.endpoint = endpoint
        self.stream = stream
        self._sent = sent
        self.ack_timeout_s = ack_timeout_ms / 1000.0
        self.max_in_flight = max(1, int(max_in_flight))
        self.seq = 0  # of the next message
        self.last_ack: dict[str, Any] = {}
        self.acked_seq = -1
        self.refusal: PublisherRefused | None = None
        self._last_heard = time.monotonic()  # of the receiver's last reply
        # Our own context unless given one: close() terminates it, which waits until the
        # zero-copy messages are really sent, so their buffers stay alive until then.
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self.socket = self._context.socket(zmq.DEALER)
        # a fixed identity keeps the stream ours across reconnects of the same connection
        self.socket.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
        self.socket.setsockopt(zmq.SNDHWM, max(int(sndhwm), self.max_in_flight + 2))
        # credit keeps a live receiver's queue below the high-water mark, so a send that
        # blocks means the connection is gone: it gives up after the ack timeout at the latest
        self.send_timeout_ms = ack_timeout_ms if send_timeout_ms is None else send_timeout_ms
        self.socket.setsockopt(zmq.SNDTIMEO, self.send_timeout_ms)
        if curve is not None:
            curve.apply(self.socket)
        self.socket.connect(endpoint)

    def reset(self) -> None:
        """A new stream: numbering from 0, no acknowledgement or refusal yet."""
        self.seq, self.acked_seq, self.last_ack, self.refusal = 0, -1, {}, None
        self._last_heard = time.monotonic()

    @property
    def settled(self) -> bool:
        """Every message sent was acknowledged, or the stream was refused."""
        return self.acked_seq >= self.seq - 1 or self.refusal is not None

    def send(self, parts: list[Any]) -> None:
        """Send one message (zero-copy) once there is credit for it; it gets the next ``seq``."""
        if self.seq % _REPLY_CHECK_EVERY == 0 or self.seq - self.acked_seq > self.max_in_flight:
            self._take_replies(0.0)  # not on every message: a poll per send costs throughput
            self._check_silence()
        while self.seq - self.acked_seq > self.max_in_flight:  # credit
            self._wait_reply("credit (earlier messages to be acknowledged)")
        try:
            self.socket.send_multipart(parts, copy=False)
        except zmq.Again:
            raise PublisherTimeout(
                f"stream {self.stream!r}: receiver at {self.endpoint} did not accept message "
                f"seq={self.seq} within {self.send_timeout_ms} ms (nothing was sent; "
                f"{self.last_ack.get('recorded', 0)} lines/frames confirmed recorded)"
            ) from None
        self.seq += 1

    def send_nowait(self, parts: list[Any]) -> bool:
        """Best effort, never blocks: whether ZeroMQ took the message (``seq`` stays)."""
        try:
            self.socket.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        return True

    def wait_acked(self, seq: int, what: str, final: bool = False) -> None:
        """Wait until message ``seq`` is acknowledged (``final``: as the stream's last)."""
        while self.acked_seq < seq or (final and not self.last_ack.get("final")):
            self._wait_reply(what)

    def close(self, linger_ms: int) -> None:
        if self.socket.closed:
            return
        self.socket.close(linger=linger_ms)
        if self._own_context:
            self._context.term()

    def _check_silence(self) -> None:
        """Messages wait for acknowledgement and the receiver (which sends heartbeats while
        busy) has said nothing for ``ack_timeout_ms``: it is gone; say so now, not at stop."""
        waiting = self.acked_seq < self.seq - 1
        if waiting and time.monotonic() - self._last_heard > self.ack_timeout_s:
            raise self._silence("acknowledgements")

    def _wait_reply(self, what: str) -> None:
        """Wait for the next reply; raise on a refusal or after ``ack_timeout_ms`` of silence."""
        if not self.socket.poll(int(self.ack_timeout_s * 1000), zmq.POLLIN):
            raise self._silence(what)
        self._take_replies(0.0)

    def _silence(self, what: str) -> PublisherTimeout:
        return PublisherTimeout(
            f"stream {self.stream!r}: no answer from a castream ingest at {self.endpoint} "
            f"for {self.ack_timeout_s:g} s while waiting for {what} (is `castream serve` "
            f"or `castream ingest` running there? {self._sent()} lines/frames sent, "
            f"{self.last_ack.get('recorded', 0)} confirmed recorded)")

    def _take_replies(self, timeout_s: float) -> None:
        """Process every reply already here; raise :class:`PublisherRefused` on a refusal."""
        while self.socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            timeout_s = 0.0
            self._last_heard = time.monotonic()
            try:
                reply = decode_reply(self.socket.recv(zmq.NOBLOCK))
            except (zmq.Again, WireError):
                continue
            if reply["kind"] == "refused":
                self.refusal = PublisherRefused(
                    str(reply.get("code")), f"stream {self.stream!r} refused by the receiver "
                    f"[{reply.get('code')}]: {reply.get('message')}")
            elif reply.get("stream") == self.stream and isinstance(reply.get("seq"), int):
                self.acked_seq = max(self.acked_seq, reply["seq"])
                self.last_ack = reply
        if self.refusal is not None:
            raise self.refusal
