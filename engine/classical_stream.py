"""Streaming building blocks of the classical detector: a stage with a fixed temporal context and
exact running sums over a causal window.

Both take frames in stream order, in chunks of any size, and give every frame's output exactly
once; the output for a frame is the same whatever the chunks, because it depends on a fixed
set of frames (the context, or the window) and is computed exactly (integers for the sums).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: ``fn(arrays, n_before, n_after) -> arrays`` for the central frames of a chunk
StageFunction = Callable[[tuple[np.ndarray, ...], int, int], tuple[np.ndarray, ...]]


class ContextStage:
    """Applies ``fn`` to each frame with ``before`` frames before it and ``after`` after it.

    ``fn`` gets aligned arrays ``(n_before + n + n_after, ...)`` and returns arrays for the ``n``
    central frames; near the start of the stream (and at :meth:`flush`, its end) it gets fewer
    context frames and must treat the chunk's first (last) frame as the stream's.
    """

    def __init__(self, fn: StageFunction, before: int, after: int, min_emit: int = 1) -> None:
        self.fn, self.before, self.after = fn, int(before), int(after)
        self.min_emit = max(1, int(min_emit))
        self._buffer: tuple[np.ndarray, ...] | None = None
        self._buf_first = 0  # stream index of buffer row 0
        self._next = 0  # next frame to output

    def push(self, arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...] | None:
        """Add the next frames; return the outputs that became computable (None if none)."""
        if self._buffer is None:
            self._buffer = tuple(np.asarray(a) for a in arrays)
        else:
            self._buffer = tuple(np.concatenate([b, a]) for b, a in zip(self._buffer, arrays,
                                                                          strict=True))
        if self._end - self.after - self._next < self.min_emit:
            return None  # wait for more: each call recomputes its context frames
        return self._emit(self._end - self.after)

    def flush(self) -> tuple[np.ndarray, ...] | None:
        """End of stream: the outputs of every remaining frame."""
        return self._emit(self._end)

    def feed(self, arrays: tuple[np.ndarray, ...] | None,
             final: bool) -> tuple[np.ndarray, ...] | None:
        """:meth:`push` ``arrays`` (if any frames), then :meth:`flush` if ``final``; the outputs
        of both joined (None if none)."""
        outs = []
        if arrays is not None and arrays[0].shape[0]:
            outs.append(self.push(arrays))
        if final:
            outs.append(self.flush())
        outs = [out for out in outs if out is not None]
        if len(outs) <= 1:
            return outs[0] if outs else None
        return tuple(np.concatenate(parts) for parts in zip(*outs, strict=True))

    @property
    def _end(self) -> int:
        return self._buf_first + (0 if self._buffer is None else self._buffer[0].shape[0])

    def _emit(self, stop: int) -> tuple[np.ndarray, ...] | None:
        if self._buffer is None or stop <= self._next:
            return None
        lo = max(self._buf_first, self._next - self.before)
        hi = min(self._end, stop + self.after)
        chunk = tuple(b[lo - self._buf_first:hi - self._buf_first] for b in self._buffer)
        out = self.fn(chunk, self._next - lo, hi - stop)
        self._next = stop
        drop = max(0, self._next - self.before - self._buf_first)
        self._buffer = tuple(b[drop:] for b in self._buffer)
        self._buf_first += drop
        return out


def cumulative_frames(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Cumulative sum over axis 0, frame by frame (numpy's strided cumsum over axis 0 of a
    ``(T, Y, X)`` block is an order of magnitude slower); ``in_place`` overwrites ``values``
    (for a temporary: no copy of the block)."""
    out = values if in_place else np.array(values, copy=True)
    for i in range(1, out.shape[0]):
        np.add(out[i], out[i - 1], out=out[i])
    return out


class CausalSums:
    """Exact sums of integer frames over the last ``window`` frames (fewer at the stream start).

    The last ``window`` frames are kept in a ring (int32: callers keep |values| < 2³¹); frame
    ``t`` sits in slot ``t mod window``, so the frame leaving the window as ``t`` enters is the
    one in that slot (zeros before the stream has ``window`` frames).
    """

    def __init__(self, window: int) -> None:
        self.window = int(window)
        self._ring: np.ndarray | None = None
        self._total: np.ndarray | None = None  # sum of the frames in the ring
        self.n_seen = 0

    def push(self, values: np.ndarray) -> np.ndarray:
        """Window sums (int64) ending at each of the new frames ``values`` ``(n, ...)``."""
        n, window = values.shape[0], self.window
        if self._ring is None:
            self._ring = np.zeros((window, *values.shape[1:]), np.int32)
            self._total = np.zeros(values.shape[1:], np.int64)
        slots = (self.n_seen + np.arange(min(n, window))) % window
        leaving = self._ring[slots].astype(np.int64)
        if n > window:
            leaving = np.concatenate([leaving, values[:n - window]])
        sums = cumulative_frames(values - leaving, in_place=True)  # a fresh int64 block
        sums += self._total
        if n:
            self._total = sums[-1].copy()
        kept = values[-window:]
        self._ring[(self.n_seen + n - len(kept) + np.arange(len(kept))) % window] = kept
        self.n_seen += n
        return sums

    def counts(self, n: int) -> np.ndarray:
        """Frames in the window of each of the next ``n`` frames (call before :meth:`push`)."""
        return np.minimum(self.n_seen + np.arange(n) + 1, self.window)
