"""How the arrays given to a publisher's ``send`` become the blocks of its chunk messages.

Each array is checked against what the stream's start declared: dtype and item shape exactly
(no silent casting). Line-scan lines are buffered into chunks of ``chunk_lines`` lines (a
whole chunk given at once goes out without a copy; a partial one is copied, since the caller
may reuse its buffer); movie frames go out as given, split only above ``max_message_bytes``;
a structure image is one block of all its planes. Each block comes with the acquisition time
of its first item (ns), from the time of the first item given and ``dt_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from acquisition.delivery import PublisherError
from acquisition.wire import StartHeader


class StreamChunker:
    """Blocks ``(n, *item shape)`` of one started stream, from what its ``send`` calls give.

    ``image_shape`` is the whole image of an image stream (``(Y, X)`` or ``(Z, Y, X)``).
    """

    def __init__(self, header: StartHeader, image_shape: tuple[int, ...] | None,
                 chunk_lines: int, max_message_bytes: int) -> None:
        self.header = header
        self._image_shape = image_shape
        self.chunk_lines = chunk_lines
        self.max_message_bytes = max_message_bytes
        self._pending: list[np.ndarray] = []
        self._pending_lines = 0
        self._pending_t_ns = 0

    def blocks(self, data: np.ndarray, t_ns: int | None) -> Iterator[tuple[np.ndarray, int]]:
        """``(block, t_ns)`` to send now for ``data`` (``t_ns``: of its first item, default
        now); line-scan lines short of a whole chunk wait for the next call or :meth:`flush`."""
        kind = self.header.stream_kind
        if kind.is_image:
            yield self._image(data), time.time_ns() if t_ns is None else int(t_ns)
            return
        block = self._as_block(data)
        if block.shape[0] == 0:
            return
        t_first_ns = time.time_ns() if t_ns is None else int(t_ns)
        if kind.is_linescan:
            yield from self._lines(block, t_first_ns)
        else:
            yield from self._frames(block, t_first_ns)

    def flush(self) -> tuple[np.ndarray, int] | None:
        """The buffered line-scan lines as one block, even if fewer than ``chunk_lines``."""
        return self._take_pending() if self._pending_lines else None

    def _take_pending(self) -> tuple[np.ndarray, int]:
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_lines = [], 0
        return np.ascontiguousarray(block), self._pending_t_ns

    def _as_block(self, data: np.ndarray) -> np.ndarray:
        header = self.header
        if data.dtype != np.dtype(header.dtype):
            raise PublisherError(
                f"stream {header.stream!r} declared dtype {header.dtype}, got {data.dtype} "
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
            f"stream {header.stream!r} declared item shape {list(item_shape)}; expected {kind}, "
            f"got array of shape {list(data.shape)}"
        )

    def _image(self, image: np.ndarray) -> np.ndarray:
        """The whole image as one block (``n`` = planes)."""
        header = self.header
        if image.dtype != np.dtype(header.dtype) or image.shape != self._image_shape:
            raise PublisherError(
                f"image stream {header.stream!r} declared {header.dtype} "
                f"{list(self._image_shape or ())}, got {image.dtype} {list(image.shape)}")
        block = np.ascontiguousarray(image.reshape((-1, *header.shape)))
        if block.nbytes > self.max_message_bytes:
            raise PublisherError(f"image of {block.nbytes} bytes exceeds max_message_bytes "
                                 f"{self.max_message_bytes}; an image is sent as one message")
        return block

    def _lines(self, block: np.ndarray, t_first_ns: int) -> Iterator[tuple[np.ndarray, int]]:
        line_ns = self.header.dt_ms * 1e6
        offset = 0
        while offset < block.shape[0]:
            take = min(self.chunk_lines - self._pending_lines, block.shape[0] - offset)
            if self._pending_lines == 0:
                self._pending_t_ns = t_first_ns + int(round(offset * line_ns))
            piece = block[offset : offset + take]
            if take == self.chunk_lines and piece.flags.c_contiguous:
                yield piece, self._pending_t_ns  # whole chunk: zero-copy
            else:
                self._pending.append(piece.copy())  # the caller may reuse its buffer
                self._pending_lines += take
                if self._pending_lines == self.chunk_lines:
                    yield self._take_pending()
            offset += take

    def _frames(self, block: np.ndarray, t_first_ns: int) -> Iterator[tuple[np.ndarray, int]]:
        per_message = max(1, self.max_message_bytes // self.header.item_bytes)
        block = np.ascontiguousarray(block)
        frame_ns = self.header.dt_ms * 1e6
        for offset in range(0, block.shape[0], per_message):
            yield block[offset : offset + per_message], t_first_ns + int(round(offset * frame_ns))
