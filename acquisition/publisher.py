"""Publisher SDK: what acquisition software (or a replay) calls to stream into castream.

A :class:`Publisher` owns one ZeroMQ DEALER socket and one stream::

    with Publisher("tcp://127.0.0.1:5555", stream="cell-07") as pub:
        pub.start("linescan", "uint16", (512,), pixel_um=0.2, dt_ms=1.5)
        for lines in camera:           # (n, 512) or (512,)
            pub.send(lines)
    # leaving the block calls stop(): flushes buffered lines, sends ``stop`` with n_total,
    # waits until the receiver has recorded everything, raises if anything is missing

Line-scans are buffered and sent in chunks of ``chunk_lines`` lines; movie frames go out
as they are given (one message per ``send`` call, split only above ``max_message_bytes``).
A structure image (wire version 3) is one ``send`` of the whole image, acknowledged like
everything else::

    with Publisher(endpoint, stream="field-3-actinin") as pub:
        pub.start("image", "uint16", image.shape, pixel_um=0.15, field="field-3")
        pub.send(image)                # (Y, X) or a z-stack (Z, Y, X), one message
Sequence numbers, ``first`` indices and timestamps are filled in here, in one place.

Delivery is acknowledged (wire version 2): the ingest answers every message it has handled
-- recorded, when it records -- and refuses what it cannot take. At most ``max_in_flight``
messages are unacknowledged (credit-based flow control: a slow receiver slows the
publisher down). :meth:`Publisher.start` waits for the receiver to accept the stream;
:meth:`Publisher.stop` waits until every line/frame is recorded and returns a
:class:`DeliveryReport` (sent / received / recorded / missing), or raises
:class:`DeliveryError` when anything sent was not received or not recorded. A refusal
(bad data, a stream owned by someone else, a failed recording) raises
:class:`PublisherRefused` at the next call; a receiver that says nothing for
``ack_timeout_ms`` (none listening, crashed, restarted) raises :class:`PublisherTimeout`.
It never reports success for data that was not recorded. Payloads are sent zero-copy: do
not modify an array after passing it to ``send``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from acquisition.curve import CurveClient
from acquisition.stream_kind import StreamKind
from acquisition.wire import (
    IMAGE_DT_MS,
    MODES,
    ChunkHeader,
    StartHeader,
    StopHeader,
    WireError,
    decode_header,
    decode_reply,
    encode_header,
    encode_message,
)

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_SNDHWM = 1000
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_ACK_TIMEOUT_MS = 5000
DEFAULT_MAX_IN_FLIGHT = 1000
_ABORT_LINGER_MS = 1000  # for the stop sent when a stream is aborted by an exception
_REPLY_CHECK_EVERY = 16  # messages between looks at the receiver's replies (refusals, acks)


class PublisherError(ValueError):
    """Data or call order that does not match what :meth:`Publisher.start` declared."""


class PublisherTimeout(TimeoutError):
    """The receiver did not take or did not answer a message in time; nothing was dropped
    silently -- the caller decides whether to retry or abort."""


class PublisherRefused(PublisherError):
    """The receiver refused a message of this stream (``code`` says why)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DeliveryReport:
    """What the receiver confirmed at the end of a stream (lines/frames)."""

    stream: str
    sent: int
    received: int
    recorded: int | None  # None: the receiver does not record
    missing_frames: int = 0
    missing: list[list[int]] = field(default_factory=list)  # [start, end) ranges (first 64)
    recording: str | None = None  # base path of the recording on the receiver
    failure: str | None = None

    @property
    def complete(self) -> bool:
        """Everything sent (and declared) was received and, when the receiver records,
        recorded."""
        recorded_all = self.recorded is None or self.recorded >= self.sent
        return (self.received >= self.sent and recorded_all and self.failure is None
                and self.missing_frames == 0)

    def describe(self) -> str:
        recorded = "not recorded (receiver does not record)" if self.recorded is None else (
            f"{self.recorded} recorded")
        text = f"stream {self.stream!r}: {self.sent} sent, {self.received} received, {recorded}"
        if self.missing_frames:
            text += f", {self.missing_frames} missing in {self.missing}"
        return text + (f"; {self.failure}" if self.failure else "")


class DeliveryError(PublisherError):
    """The stream ended but not everything sent was received and recorded."""

    def __init__(self, report: DeliveryReport):
        super().__init__(f"delivery incomplete: {report.describe()}")
        self.report = report


class Publisher:
    """Stream one recording to a castream ingest over a PUSH socket.

    Parameters
    ----------
    endpoint
        ZeroMQ address the ingest is bound to (the publisher connects).
    stream
        Stream id (1-128 characters); one publisher sends one stream at a time.
    chunk_lines
        Line-scan lines per message.
    context
        ZeroMQ context to use; by default the publisher makes its own and terminates it in
        :meth:`close`. With a shared context, terminate it only after the last ``send``'s
        arrays may be freed (zero-copy sends reference them until they are on the wire).
    send_timeout_ms
        How long one send may block before :class:`PublisherTimeout` (``None``: up to
        ``ack_timeout_ms``). A live receiver slows the publisher through credit (waiting for
        acknowledgements, with heartbeats), so a blocked send means the connection is gone.
    sndhwm
        Messages ZeroMQ may queue before ``send`` blocks.
    max_message_bytes
        Frames given in one ``send`` call are split into messages no larger than this.
    ack_timeout_ms
        How long the receiver may stay silent while the publisher waits for it (the start's
        acceptance, credit, the stop's confirmation) before :class:`PublisherTimeout`. A busy
        receiver sends heartbeats every second, so this bounds silence, not slowness.
    max_in_flight
        Messages sent but not yet acknowledged before ``send`` waits.
    curve
        :class:`~acquisition.curve.CurveClient` keys for an engine that requires CURVE
        (``serve --curve-dir``); ``None``: plain connection.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        stream: str = "stream",
        chunk_lines: int = 64,
        context: zmq.Context | None = None,
        send_timeout_ms: int | None = None,
        sndhwm: int = DEFAULT_SNDHWM,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        ack_timeout_ms: int = DEFAULT_ACK_TIMEOUT_MS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        curve: CurveClient | None = None,
    ):
        if chunk_lines < 1:
            raise PublisherError(f"chunk_lines must be >= 1, got {chunk_lines}")
        self.endpoint = endpoint
        self.stream = stream
        self.chunk_lines = int(chunk_lines)
        self.send_timeout_ms = send_timeout_ms
        self.max_message_bytes = int(max_message_bytes)
        self.header: StartHeader | None = None
        self.n_sent = 0  # lines/frames handed to ZeroMQ
        self.messages_sent = 0
        self._seq = 0
        self._pending: list[np.ndarray] = []
        self._pending_lines = 0
        self._pending_t_ns = 0
        self._image_shape: tuple[int, ...] | None = None  # image streams: the whole image
        self.ack_timeout_s = ack_timeout_ms / 1000.0
        self.max_in_flight = max(1, int(max_in_flight))
        self.last_ack: dict[str, Any] = {}
        self._acked_seq = -1
        self._last_heard = time.monotonic()  # of the receiver's last reply
        self._refusal: PublisherRefused | None = None
        # Our own context unless given one: close() terminates it, which waits until the
        # zero-copy messages are really sent, so their buffers stay alive until then.
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.DEALER)
        # a fixed identity keeps the stream ours across reconnects of the same connection
        self._socket.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
        self._socket.setsockopt(zmq.SNDHWM, max(int(sndhwm), self.max_in_flight + 2))
        # credit keeps a live receiver's queue below the high-water mark, so a send that
        # blocks means the connection is gone: it gives up after the ack timeout at the latest
        self._send_timeout_ms = ack_timeout_ms if send_timeout_ms is None else send_timeout_ms
        self._socket.setsockopt(zmq.SNDTIMEO, self._send_timeout_ms)
        if curve is not None:
            curve.apply(self._socket)
        self._socket.connect(endpoint)

    # -- stream lifecycle -------------------------------------------------------------
    def start(
        self,
        mode: str,
        dtype: Any,
        shape: tuple[int, ...] | list[int] | int,
        pixel_um: float,
        dt_ms: float | None = None,
        blank: float | None = None,
        cell: str | None = None,
        metadata: dict[str, Any] | None = None,
        field: str | None = None,
        content: str | None = None,
    ) -> StartHeader:
        """Open the stream: declare mode, dtype, shape of one line ``(X,)``, one frame
        ``(Y, X)`` or the whole image ``(Y, X)`` / ``(Z, Y, X)`` (mode ``"image"``) and
        calibration (``dt_ms`` is required except for images). ``field`` names the field of
        view (a Ca²⁺ stream's events are attributed to the cells of the structure image
        with the same field); ``content`` (images) is ``"structure"`` or ``"labels"``.
        Raises ``WireError`` if the header is invalid."""
        if self.header is not None:
            raise PublisherError(f"stream {self.stream!r} already started; call stop() first")
        shape_tuple = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        self._image_shape = None
        if mode not in MODES:
            raise WireError("bad_header", f"mode must be one of {MODES}, got {mode!r}",
                            self.stream)
        if StreamKind.from_wire_mode(mode).is_image:
            self._image_shape = shape_tuple
            shape_tuple = shape_tuple[-2:] if len(shape_tuple) == 3 else shape_tuple
            dt_ms = IMAGE_DT_MS if dt_ms is None else dt_ms
        elif dt_ms is None:
            raise PublisherError(f"dt_ms (line/frame interval) is required for mode {mode!r}")
        header = StartHeader(
            stream=self.stream, mode=mode, dtype=np.dtype(dtype).name, shape=shape_tuple,
            pixel_um=float(pixel_um), dt_ms=float(dt_ms),
            blank=None if blank is None else float(blank), cell=cell,
            metadata=dict(metadata or {}), seq=0, field=field, content=content,
        )
        decode_header(encode_header(header))  # same validation as the receiver
        self._seq, self.n_sent, self.messages_sent = 0, 0, 0
        self._acked_seq, self.last_ack, self._refusal = -1, {}, None
        self._last_heard = time.monotonic()
        self._send_parts(encode_message(header))
        self._wait_acked(0, "the receiver to accept the stream")
        self.header = header
        return header

    def send(self, data: np.ndarray, t_ns: int | None = None) -> None:
        """Send lines ``(n, X)`` / ``(X,)`` or frames ``(n, Y, X)`` / ``(Y, X)``.

        ``t_ns`` is the acquisition time of the first item (default: now). The array's
        dtype and item shape must match :meth:`start` exactly (no silent casting).
        """
        header = self._require_started()
        if header.stream_kind.is_image:
            self._send_image(np.asarray(data), header, t_ns)
            return
        block = self._as_block(np.asarray(data), header)
        if block.shape[0] == 0:
            return
        t_first_ns = time.time_ns() if t_ns is None else int(t_ns)
        if header.stream_kind.is_linescan:
            self._buffer_lines(block, t_first_ns)
        else:
            self._send_frames(block, t_first_ns)

    def flush(self) -> None:
        """Send buffered line-scan lines now, even if fewer than ``chunk_lines``."""
        if not self._pending_lines:
            return
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_lines = [], 0
        self._send_chunk(np.ascontiguousarray(block), self._pending_t_ns)

    def sync(self) -> DeliveryReport:
        """Flush and wait until every message sent so far is acknowledged (recorded, when the
        receiver records); the counts so far. Raises like :meth:`stop`."""
        self._require_started()
        self.flush()
        self._wait_acked(self._seq - 1, "earlier messages to be acknowledged")
        return self._report()

    def stop(self, n_total: int | None = None) -> DeliveryReport:
        """Flush and close the stream with ``n_total`` = lines/frames sent (or the given
        value, e.g. what the instrument acquired); wait until the receiver confirms.

        Returns the :class:`DeliveryReport`; raises :class:`DeliveryError` when not everything
        sent was received and recorded, :class:`PublisherRefused` or :class:`PublisherTimeout`.
        """
        self._require_started()
        self.flush()
        n_total = self.n_sent if n_total is None else int(n_total)
        stop = StopHeader(stream=self.stream, seq=self._seq, n_total=n_total)
        self.header = None
        self._send_parts(encode_message(stop))
        self._wait_acked(stop.seq, "the receiver to confirm the recording", final=True)
        report = self._report()
        if not report.complete:
            raise DeliveryError(report)
        log.info("%s", report.describe())
        return report

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket. Queued messages get at most ``linger_ms`` (default: nothing when
        every message was acknowledged or the stream failed, else ``ack_timeout_ms``) --
        close never hangs on an absent receiver; what was not acknowledged was reported."""
        if self._socket.closed:
            return
        if linger_ms is None:
            settled = self._acked_seq >= self._seq - 1 or self._refusal is not None
            linger_ms = 0 if settled else int(self.ack_timeout_s * 1000)
        self._socket.close(linger=linger_ms)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                if self.header is not None:
                    self.stop()
            finally:
                self.close()
            return
        linger_ms = 0  # the error is already the caller's news: no waiting on a gone receiver
        if self.header is not None and self._refusal is None:
            linger_ms = self._send_abort_stop()
            log.warning("stream %r aborted by %s after %d lines/frames (%s confirmed recorded)",
                        self.stream, exc_type.__name__, self.n_sent,
                        self.last_ack.get("recorded", 0))
        self.close(linger_ms=linger_ms)

    def _send_abort_stop(self) -> int:
        """Best effort: close the stream on the receiver (so that its recording is finalized
        and the stream id can be used again); never blocks. Returns the linger to allow."""
        stop = StopHeader(stream=self.stream, seq=self._seq, n_total=self.n_sent)
        self.header, self._pending, self._pending_lines = None, [], 0
        try:
            self._socket.send_multipart(encode_message(stop), flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            return 0
        return _ABORT_LINGER_MS

    # -- internals --------------------------------------------------------------------
    def _require_started(self) -> StartHeader:
        if self.header is None:
            raise PublisherError(f"stream {self.stream!r} is not started; call start() first")
        return self.header

    def _as_block(self, data: np.ndarray, header: StartHeader) -> np.ndarray:
        if data.dtype != np.dtype(header.dtype):
            raise PublisherError(
                f"stream {self.stream!r} declared dtype {header.dtype}, got {data.dtype} "
                "(convert explicitly, e.g. data.astype(...))"
            )
        item_shape = tuple(header.shape)
        if data.shape == item_shape:
            return data[np.newaxis]
        if data.ndim == len(item_shape) + 1 and data.shape[1:] == item_shape:
            return data
        kind = ("lines (n, X) or (X,)" if header.stream_kind.is_linescan
                else "frames (n, Y, X) or (Y, X)")
        raise PublisherError(
            f"stream {self.stream!r} declared item shape {list(item_shape)}; expected {kind}, "
            f"got array of shape {list(data.shape)}"
        )

    def _send_image(self, image: np.ndarray, header: StartHeader, t_ns: int | None) -> None:
        """The whole image as one chunk (``n`` = planes); an image stream takes one send."""
        if self.n_sent:
            raise PublisherError(f"image stream {self.stream!r} already sent its image (one "
                                 "send per image stream; start another stream for the next)")
        if image.dtype != np.dtype(header.dtype) or image.shape != self._image_shape:
            raise PublisherError(
                f"image stream {self.stream!r} declared {header.dtype} {list(self._image_shape)}"
                f", got {image.dtype} {list(image.shape)}")
        block = np.ascontiguousarray(image.reshape((-1, *header.shape)))
        if block.nbytes > self.max_message_bytes:
            raise PublisherError(f"image of {block.nbytes} bytes exceeds max_message_bytes "
                                 f"{self.max_message_bytes}; an image is sent as one message")
        self._send_chunk(block, time.time_ns() if t_ns is None else int(t_ns))

    def _buffer_lines(self, block: np.ndarray, t_first_ns: int) -> None:
        header = self.header
        assert header is not None
        line_ns = header.dt_ms * 1e6
        offset = 0
        while offset < block.shape[0]:
            take = min(self.chunk_lines - self._pending_lines, block.shape[0] - offset)
            if self._pending_lines == 0:
                self._pending_t_ns = t_first_ns + int(round(offset * line_ns))
            piece = block[offset : offset + take]
            if take == self.chunk_lines and piece.flags.c_contiguous:
                self._send_chunk(piece, self._pending_t_ns)  # whole chunk: zero-copy
            else:
                self._pending.append(piece.copy())  # the caller may reuse its buffer
                self._pending_lines += take
                if self._pending_lines == self.chunk_lines:
                    self.flush()
            offset += take

    def _send_frames(self, block: np.ndarray, t_first_ns: int) -> None:
        header = self.header
        assert header is not None
        per_message = max(1, self.max_message_bytes // header.item_bytes)
        block = np.ascontiguousarray(block)
        frame_ns = header.dt_ms * 1e6
        for offset in range(0, block.shape[0], per_message):
            t_ns = t_first_ns + int(round(offset * frame_ns))
            self._send_chunk(block[offset : offset + per_message], t_ns)

    def _send_chunk(self, block: np.ndarray, t_ns: int) -> None:
        n = int(block.shape[0])
        chunk = ChunkHeader(stream=self.stream, seq=self._seq, first=self.n_sent, n=n, t_ns=t_ns)
        self._send_parts(encode_message(chunk, block))
        self.n_sent += n

    def _send_parts(self, parts: list[Any]) -> None:
        if self._seq % _REPLY_CHECK_EVERY == 0 or self._seq - self._acked_seq > self.max_in_flight:
            self._take_replies(0.0)  # not on every message: a poll per send costs throughput
            self._check_silence()
        while self._seq - self._acked_seq > self.max_in_flight:  # credit
            self._wait_reply("credit (earlier messages to be acknowledged)")
        try:
            self._socket.send_multipart(parts, copy=False)
        except zmq.Again:
            raise PublisherTimeout(
                f"stream {self.stream!r}: receiver at {self.endpoint} did not accept message "
                f"seq={self._seq} within {self._send_timeout_ms} ms (nothing was sent; "
                f"{self.last_ack.get('recorded', 0)} lines/frames confirmed recorded)"
            ) from None
        self._seq += 1
        self.messages_sent += 1

    # -- acknowledgements ---------------------------------------------------------------
    def _wait_acked(self, seq: int, what: str, final: bool = False) -> None:
        while self._acked_seq < seq or (final and not self.last_ack.get("final")):
            self._wait_reply(what)

    def _check_silence(self) -> None:
        """Messages wait for acknowledgement and the receiver (which sends heartbeats while
        busy) has said nothing for ``ack_timeout_ms``: it is gone; say so now, not at stop."""
        waiting = self._acked_seq < self._seq - 1
        if waiting and time.monotonic() - self._last_heard > self.ack_timeout_s:
            raise self._silence("acknowledgements")

    def _wait_reply(self, what: str) -> None:
        """Wait for the next reply; raise on a refusal or after ``ack_timeout_ms`` of silence."""
        if not self._socket.poll(int(self.ack_timeout_s * 1000), zmq.POLLIN):
            raise self._silence(what)
        self._take_replies(0.0)

    def _silence(self, what: str) -> PublisherTimeout:
        return PublisherTimeout(
            f"stream {self.stream!r}: no answer from a castream ingest at {self.endpoint} "
            f"for {self.ack_timeout_s:g} s while waiting for {what} (is `castream serve` "
            f"or `castream ingest` running there? {self.n_sent} lines/frames sent, "
            f"{self.last_ack.get('recorded', 0)} confirmed recorded)")

    def _take_replies(self, timeout_s: float) -> None:
        """Process every reply already here; raise :class:`PublisherRefused` on a refusal."""
        while self._socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            timeout_s = 0.0
            self._last_heard = time.monotonic()
            try:
                reply = decode_reply(self._socket.recv(zmq.NOBLOCK))
            except (zmq.Again, WireError):
                continue
            if reply["kind"] == "refused":
                self._refusal = PublisherRefused(
                    str(reply.get("code")), f"stream {self.stream!r} refused by the receiver "
                    f"[{reply.get('code')}]: {reply.get('message')}")
            elif reply.get("stream") == self.stream and isinstance(reply.get("seq"), int):
                self._acked_seq = max(self._acked_seq, reply["seq"])
                self.last_ack = reply
        if self._refusal is not None:
            raise self._refusal

    def _report(self) -> DeliveryReport:
        ack = self.last_ack
        return DeliveryReport(
            stream=self.stream, sent=self.n_sent, received=int(ack.get("received", 0)),
            recorded=int(ack.get("recorded", 0)) if ack.get("recording") else None,
            missing_frames=int(ack.get("missing_frames", 0)), missing=ack.get("missing") or [],
            recording=ack.get("path"), failure=ack.get("failure"))
