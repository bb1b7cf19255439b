"""Publisher SDK: what acquisition software (or a replay) calls to stream into castream.

A :class:`Publisher` owns one ZeroMQ PUSH socket and one stream::

    with Publisher("tcp://127.0.0.1:5555", stream="cell-07") as pub:
        pub.start("linescan", "uint16", (512,), pixel_um=0.2, dt_ms=1.5)
        for lines in camera:           # (n, 512) or (512,)
            pub.send(lines)
    # leaving the block calls stop(): flushes buffered lines, sends ``stop`` with n_total

Line-scans are buffered and sent in chunks of ``chunk_lines`` lines; movie frames go out
as they are given (one message per ``send`` call, split only above ``max_message_bytes``).
Sequence numbers, ``first`` indices and timestamps are filled in here, in one place.

Delivery is lossless: PUSH blocks when the receiver is slow or absent (after ``sndhwm``
queued messages). With ``send_timeout_ms=None`` (the default) ``send`` waits as long as it
takes; with a timeout it raises :class:`PublisherTimeout` instead -- it never drops data
silently. Payloads are sent zero-copy: do not modify an array after passing it to ``send``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import zmq

from acquisition.wire import (
    ChunkHeader,
    StartHeader,
    StopHeader,
    decode_header,
    encode_header,
    encode_message,
)

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_SNDHWM = 1000
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_ABORT_LINGER_MS = 5000


class PublisherError(ValueError):
    """Data or call order that does not match what :meth:`Publisher.start` declared."""


class PublisherTimeout(TimeoutError):
    """The receiver did not take a message within ``send_timeout_ms``; nothing was dropped
    silently -- the caller decides whether to retry or abort."""


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
        ``None`` blocks until the receiver takes each message (lossless backpressure);
        a number raises :class:`PublisherTimeout` after that many ms. It also bounds how
        long :meth:`close` lingers to deliver queued messages.
    sndhwm
        Messages ZeroMQ may queue before ``send`` blocks.
    max_message_bytes
        Frames given in one ``send`` call are split into messages no larger than this.
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
        # Our own context unless given one: close() terminates it, which waits until the
        # zero-copy messages are really sent, so their buffers stay alive until then.
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._socket.setsockopt(zmq.SNDTIMEO, -1 if send_timeout_ms is None else send_timeout_ms)
        self._socket.connect(endpoint)

    # -- stream lifecycle -------------------------------------------------------------
    def start(
        self,
        mode: str,
        dtype: Any,
        shape: tuple[int, ...] | list[int] | int,
        pixel_um: float,
        dt_ms: float,
        blank: float | None = None,
        cell: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> StartHeader:
        """Open the stream: declare mode, dtype, shape of one line ``(X,)`` or frame
        ``(Y, X)`` and calibration. Raises ``WireError`` if the header is invalid."""
        if self.header is not None:
            raise PublisherError(f"stream {self.stream!r} already started; call stop() first")
        shape_tuple = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        header = StartHeader(
            stream=self.stream, mode=mode, dtype=np.dtype(dtype).name, shape=shape_tuple,
            pixel_um=float(pixel_um), dt_ms=float(dt_ms),
            blank=None if blank is None else float(blank), cell=cell,
            metadata=dict(metadata or {}), seq=0,
        )
        decode_header(encode_header(header))  # same validation as the receiver
        self._seq, self.n_sent, self.messages_sent = 0, 0, 0
        self._send_parts(encode_message(header))
        self.header = header
        return header

    def send(self, data: np.ndarray, t_ns: int | None = None) -> None:
        """Send lines ``(n, X)`` / ``(X,)`` or frames ``(n, Y, X)`` / ``(Y, X)``.

        ``t_ns`` is the acquisition time of the first item (default: now). The array's
        dtype and item shape must match :meth:`start` exactly (no silent casting).
        """
        header = self._require_started()
        block = self._as_block(np.asarray(data), header)
        if block.shape[0] == 0:
            return
        t_first_ns = time.time_ns() if t_ns is None else int(t_ns)
        if header.mode == "linescan":
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

    def stop(self, n_total: int | None = None) -> StopHeader:
        """Flush and close the stream with ``n_total`` = lines/frames sent (or the given
        value, e.g. what the instrument acquired)."""
        self._require_started()
        self.flush()
        n_total = self.n_sent if n_total is None else int(n_total)
        stop = StopHeader(stream=self.stream, seq=self._seq, n_total=n_total)
        self._send_parts(encode_message(stop))
        self.header = None
        return stop

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket and deliver queued messages: waits until they are sent, or for
        at most ``linger_ms`` (default ``send_timeout_ms``; forever when that is ``None``)."""
        if self._socket.closed:
            return
        if linger_ms is None:
            linger_ms = -1 if self.send_timeout_ms is None else self.send_timeout_ms
        self._socket.close(linger=linger_ms)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self.header is not None:
                self.stop()
            self.close()
            return
        if self.header is not None:
            log.warning("stream %r aborted by %s; no stop sent", self.stream, exc_type.__name__)
        # deliver what was sent before the error, but do not hang on an absent receiver
        self.close(linger_ms=min(self.send_timeout_ms or _ABORT_LINGER_MS, _ABORT_LINGER_MS))

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
        kind = "lines (n, X) or (X,)" if header.mode == "linescan" else "frames (n, Y, X) or (Y, X)"
        raise PublisherError(
            f"stream {self.stream!r} declared item shape {list(item_shape)}; expected {kind}, "
            f"got array of shape {list(data.shape)}"
        )

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
        try:
            self._socket.send_multipart(parts, copy=False)
        except zmq.Again:
            raise PublisherTimeout(
                f"stream {self.stream!r}: receiver at {self.endpoint} did not accept message "
                f"seq={self._seq} within {self.send_timeout_ms} ms (nothing was sent)"
            ) from None
        self._seq += 1
        self.messages_sent += 1
