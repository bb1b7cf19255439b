"""Publisher SDK: what acquisition software (or a replay) calls to stream into castream.

A :class:`Publisher` owns one ZeroMQ DEALER socket and one stream::

    with Publisher("tcp://127.0.0.1:5555", stream="cell-07") as pub:
        pub.start("linescan", "uint16", (512,), pixel_um=0.2, dt_ms=1.5)
        for lines in camera:           # (n, 512) or (512,)
            pub.send(lines)
    # leaving the block calls stop(): flushes buffered lines, sends ``stop`` with n_total,
    # waits until the receiver has recorded everything, raises if anything is missing

Line-scans are buffered and sent in chunks of ``chunk_lines`` lines; movie frames go out
as they are given (one message per ``send`` call, split only above ``max_message_bytes``;
:mod:`acquisition.publisher_chunks`).
A structure image (wire version 3) is one ``send`` of the whole image, acknowledged like
everything else::

    with Publisher(endpoint, stream="field-3-actinin") as pub:
        pub.start("image", "uint16", image.shape, pixel_um=0.15, field="field-3")
        pub.send(image)                # (Y, X) or a z-stack (Z, Y, X), one message
Sequence numbers, ``first`` indices and timestamps are filled in by the publisher, never by
the caller.

Delivery is acknowledged (wire version 2): the ingest answers every message it has handled
-- recorded, when it records -- and refuses what it cannot take. At most ``max_in_flight``
messages are unacknowledged (credit-based flow control: a slow receiver slows the
publisher down; the socket's side is :mod:`acquisition.publisher_link`). :meth:`Publisher.start` waits for the receiver to accept the stream;
:meth:`Publisher.stop` waits until every line/frame is recorded and returns a
:class:`DeliveryReport` (sent / received / recorded / missing), or raises
:class:`DeliveryError` when anything sent was not received or not recorded. A refusal
(bad data, a stream owned by someone else, a failed recording) raises
:class:`PublisherRefused` at the next call; a receiver that says nothing for
``ack_timeout_ms`` (none listening, crashed, restarted) raises :class:`PublisherTimeout`.
It never reports success for data that was not recorded (the report and the errors are
:mod:`acquisition.delivery`'s, exported here too). Payloads are sent zero-copy: do
not modify an array after passing it to ``send``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import zmq

from acquisition.curve import CurveClient
from acquisition.delivery import (
    DeliveryError,
    DeliveryReport,
    PublisherError,
    PublisherRefused,
    PublisherTimeout,
    report_from_ack,
)
from acquisition.publisher_chunks import StreamChunker
from acquisition.publisher_link import PublisherLink
from acquisition.stream_kind import StreamKind
from acquisition.wire import (
    IMAGE_DT_MS,
    MODES,
    ChunkHeader,
    StartHeader,
    StopHeader,
    WireError,
    decode_header,
    encode_header,
    encode_message,
)

__all__ = [
    "DeliveryError", "DeliveryReport", "Publisher", "PublisherError", "PublisherRefused",
    "PublisherTimeout",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_SNDHWM = 1000
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_ACK_TIMEOUT_MS = 5000
DEFAULT_MAX_IN_FLIGHT = 1000
_ABORT_LINGER_MS = 1000  # for the stop sent when a stream is aborted by an exception


class Publisher:
    """Stream one recording to a castream ingest over a DEALER socket.

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
        self._chunks: StreamChunker | None = None  # of the started stream
        self._link = PublisherLink(endpoint, stream, lambda: self.n_sent, context,
                                   send_timeout_ms, sndhwm, ack_timeout_ms, max_in_flight, curve)

    @property
    def messages_sent(self) -> int:
        """Messages of this stream handed to ZeroMQ."""
        return self._link.seq

    @property
    def last_ack(self) -> dict[str, Any]:
        """The receiver's last acknowledgement of this stream (its counts so far)."""
        return self._link.last_ack

    @property
    def max_in_flight(self) -> int:
        return self._link.max_in_flight

    @property
    def ack_timeout_s(self) -> float:
        return self._link.ack_timeout_s

    @ack_timeout_s.setter
    def ack_timeout_s(self, value: float) -> None:
        self._link.ack_timeout_s = value

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
        image_shape = None
        if mode not in MODES:
            raise WireError("bad_header", f"mode must be one of {MODES}, got {mode!r}",
                            self.stream)
        if StreamKind.from_wire_mode(mode).is_image:
            image_shape = shape_tuple
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
        self.n_sent = 0
        self._link.reset()
        self._link.send(encode_message(header))
        self._link.wait_acked(0, "the receiver to accept the stream")
        self.header = header
        self._chunks = StreamChunker(header, image_shape, self.chunk_lines,
                                     self.max_message_bytes)
        return header

    def send(self, data: np.ndarray, t_ns: int | None = None) -> None:
        """Send lines ``(n, X)`` / ``(X,)`` or frames ``(n, Y, X)`` / ``(Y, X)``.

        ``t_ns`` is the acquisition time of the first item (default: now). The array's
        dtype and item shape must match :meth:`start` exactly (no silent casting).
        """
        header = self._require_started()
        if header.stream_kind.is_image and self.n_sent:
            raise PublisherError(f"image stream {self.stream!r} already sent its image (one "
                                 "send per image stream; start another stream for the next)")
        assert self._chunks is not None
        for block, t_first_ns in self._chunks.blocks(np.asarray(data), t_ns):
            self._send_chunk(block, t_first_ns)

    def flush(self) -> None:
        """Send buffered line-scan lines now, even if fewer than ``chunk_lines``."""
        pending = self._chunks.flush() if self._chunks is not None else None
        if pending is not None:
            self._send_chunk(*pending)

    def sync(self) -> DeliveryReport:
        """Flush and wait until every message sent so far is acknowledged (recorded, when the
        receiver records); the counts so far. Raises like :meth:`stop`."""
        self._require_started()
        self.flush()
        self._link.wait_acked(self._link.seq - 1, "earlier messages to be acknowledged")
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
        stop = StopHeader(stream=self.stream, seq=self._link.seq, n_total=n_total)
        self.header, self._chunks = None, None
        self._link.send(encode_message(stop))
        self._link.wait_acked(stop.seq, "the receiver to confirm the recording", final=True)
        report = self._report()
        if not report.complete:
            raise DeliveryError(report)
        log.info("%s", report.describe())
        return report

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket. Queued messages get at most ``linger_ms`` (default: nothing when
        every message was acknowledged or the stream failed, else ``ack_timeout_ms``) --
        close never hangs on an absent receiver; what was not acknowledged was reported."""
        if linger_ms is None:
            linger_ms = 0 if self._link.settled else int(self.ack_timeout_s * 1000)
        self._link.close(linger_ms)

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
        if self.header is not None and self._link.refusal is None:
            linger_ms = self._send_abort_stop()
            log.warning("stream %r aborted by %s after %d lines/frames (%s confirmed recorded)",
                        self.stream, exc_type.__name__, self.n_sent,
                        self.last_ack.get("recorded", 0))
        self.close(linger_ms=linger_ms)

    def _send_abort_stop(self) -> int:
        """Best effort: close the stream on the receiver (so that its recording is finalized
        and the stream id can be used again); never blocks. Returns the linger to allow."""
        stop = StopHeader(stream=self.stream, seq=self._link.seq, n_total=self.n_sent)
        self.header, self._chunks = None, None
        return _ABORT_LINGER_MS if self._link.send_nowait(encode_message(stop)) else 0

    # -- internals --------------------------------------------------------------------
    def _require_started(self) -> StartHeader:
        if self.header is None:
            raise PublisherError(f"stream {self.stream!r} is not started; call start() first")
        return self.header

    def _send_chunk(self, block: np.ndarray, t_ns: int) -> None:
        n = int(block.shape[0])
        chunk = ChunkHeader(stream=self.stream, seq=self._link.seq, first=self.n_sent, n=n,
                            t_ns=t_ns)
        self._link.send(encode_message(chunk, block))
        self.n_sent += n

    def _report(self) -> DeliveryReport:
        return report_from_ack(self.stream, self.n_sent, self._link.last_ack)
