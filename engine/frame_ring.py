"""A buffer of one stream's frames keyed by absolute frame index.

:class:`FrameRing` is what every per-stream stage that keeps recent frames holds them in (the
analyzer's ΔF/F0 -- read by the tracker and the preview --, the windower's network input, the
tracker's per-pixel arrays): frames are appended in stream order, read by absolute index
``[start, stop)`` and released from the old end, so no stage does its own offset arithmetic.

Storage is one array that grows geometrically and is compacted in place once the released
frames at its front leave no room at its end, so an append costs amortised O(frames appended)
whatever the block sizes. A read is a view of that storage: it stays valid only until the next
:meth:`FrameRing.append` (which may move the frames); copy what must outlive it.
"""

from __future__ import annotations

import numpy as np

MIN_CAPACITY = 16  # frames allocated at the first append, at least


class FrameRing:
    """Frames ``first .. stop-1`` of a stream, by absolute frame index.

    Parameters
    ----------
    frame_shape : tuple of int
        Shape of one frame, e.g. ``(X,)`` for a line-scan line, ``(Y, X)`` for a movie frame.
    dtype : numpy dtype
        Dtype of the stored frames (appended frames are cast to it).
    first : int
        Absolute index of the first frame that will be appended.
    """

    def __init__(self, frame_shape: tuple[int, ...], dtype=np.float32, first: int = 0) -> None:
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)
        self._first = int(first)  # absolute index of the oldest held frame
        self._stop = int(first)  # absolute index of the next frame to append
        self._offset = 0  # storage row of frame ``_first``
        self._storage = np.empty((0, *self.frame_shape), self.dtype)

    @property
    def first(self) -> int:
        """Absolute index of the oldest frame still held (== :attr:`stop` when none is)."""
        return self._first

    @property
    def stop(self) -> int:
        """Absolute index one past the newest frame: the index the next append must start at."""
        return self._stop

    def __len__(self) -> int:
        """Frames held."""
        return self._stop - self._first

    @property
    def capacity(self) -> int:
        """Frames the storage can hold without growing."""
        return self._storage.shape[0]

    def append(self, first: int, frames: np.ndarray) -> None:
        """Append frames ``first .. first + len(frames) - 1``; ``first`` must be :attr:`stop`."""
        if first != self._stop:
            raise ValueError(f"frames must be contiguous: expected frame {self._stop}, "
                             f"got frame {first}")
        frames = np.asarray(frames)
        if tuple(frames.shape[1:]) != self.frame_shape:
            raise ValueError(f"frame shape {tuple(frames.shape[1:])} != {self.frame_shape}")
        n = frames.shape[0]
        self._make_room(n)
        end = self._offset + len(self)
        self._storage[end:end + n] = frames
        self._stop += n

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start .. stop-1`` as a view ``(stop - start, *frame_shape)``.

        The view is valid until the next :meth:`append`. Raises ValueError when a frame was
        released already (``start < first``) or not received yet (``stop > self.stop``).
        """
        if start > stop:
            raise ValueError(f"empty or reversed frame range [{start}, {stop})")
        if start < self._first:
            raise ValueError(f"frames [{start}, {min(stop, self._first)}) were released "
                             f"(oldest held frame: {self._first})")
        if stop > self._stop:
            raise ValueError(f"frames [{max(start, self._stop)}, {stop}) not received yet "
                             f"(next frame: {self._stop})")
        lo = self._offset + start - self._first
        return self._storage[lo:lo + stop - start]

    def held(self) -> np.ndarray:
        """Every frame held, ``first .. stop-1``, as a view (see :meth:`read`)."""
        return self.read(self._first, self._stop)

    def release(self, before: int) -> None:
        """Forget every frame before absolute index ``before`` (no-op for frames released
        already); ``before`` may not pass :attr:`stop`."""
        if before > self._stop:
            raise ValueError(f"cannot release up to frame {before}: frames from {self._stop} "
                             f"not received yet")
        if before > self._first:
            self._offset += before - self._first
            self._first = before

    def _make_room(self, n: int) -> None:
        """Room for ``n`` more frames after the held ones: compact in place when at most half
        the storage is then in use, else reallocate to twice that (also shrinking storage left
        four times too large by a burst)."""
        held = len(self)
        if self._offset + held + n <= self.capacity:
            return
        want = max(MIN_CAPACITY, 2 * (held + n))
        if want > self.capacity or 4 * want <= self.capacity:
            storage = np.empty((want, *self.frame_shape), self.dtype)
            storage[:held] = self._storage[self._offset:self._offset + held]
            self._storage = storage
        else:
            self._storage[:held] = self._storage[self._offset:self._offset + held]
        self._offset = 0
