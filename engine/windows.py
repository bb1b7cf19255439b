"""Per-stream window scheduling and stitching: every frame becomes final exactly once.

Geometry (all in frames/lines along T): a window holds ``frames = margin_left + hop +
margin_right`` consecutive frames. Window ``k`` starts at ``k * hop`` and *keeps* its central
region ``[start + margin_left, start + margin_left + hop)``: those frames' probabilities are
final, taken from this window alone (no averaging, so results are deterministic and do not
depend on how frames were chunked). Two boundary rules make the keep regions tile the stream:

- the first window (start 0) also keeps its left margin ``[0, margin_left)``;
- :meth:`Windower.flush` (end of stream) emits one last window covering the last ``frames``
  frames (``[max(0, n - frames), n)``, padded at the end by reflection when the stream is shorter
  than a window) that keeps every frame not yet final.

Built-in latency (look-ahead): in steady state a frame at offset ``k`` (0 ≤ k < hop) of a keep
region is final once the window's last frame has arrived, i.e. ``margin_right + hop - 1 - k``
frames later. :attr:`WindowGeometry.lookahead_frames` is the worst case
(``margin_right + hop - 1``), :attr:`WindowGeometry.min_lookahead_frames` the best
(``margin_right``). Start-up (first window: up to ``frames - 1``) and the end of stream (flush) are
excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .frame_ring import FrameRing

MODES = ("accurate", "low_latency")


@dataclass(frozen=True)
class WindowGeometry:
    """Window size, hop and margins in frames (``frames == margin_left + hop + margin_right``)."""

    frames: int
    hop: int
    margin_left: int
    margin_right: int

    def __post_init__(self) -> None:
        if self.hop < 1 or self.margin_left < 0 or self.margin_right < 0:
            raise ValueError(f"need hop >= 1 and margins >= 0: {self}")
        if self.frames != self.margin_left + self.hop + self.margin_right:
            raise ValueError(f"frames must equal margin_left + hop + margin_right: {self}")

    @property
    def lookahead_frames(self) -> int:
        """Worst-case frames after a frame that must arrive before it is final (steady state)."""
        return self.margin_right + self.hop - 1

    @property
    def min_lookahead_frames(self) -> int:
        """Best-case look-ahead: the last frame of each keep region."""
        return self.margin_right

    def lookahead_ms(self, dt_ms: float) -> float:
        """Worst-case built-in latency in ms for a frame interval ``dt_ms``."""
        return self.lookahead_frames * dt_ms

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "hop": self.hop, "margin_left": self.margin_left,
                "margin_right": self.margin_right}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowGeometry:
        """Build from a config dict; ``frames`` may be omitted (it is implied)."""
        hop, left, right = int(data["hop"]), int(data["margin_left"]), int(data["margin_right"])
        return cls(int(data.get("frames", left + hop + right)), hop, left, right)


@dataclass(frozen=True)
class Window:
    """One network input: ``data[i]`` is stream frame ``start + i`` (or padding past the end).

    ``keep`` indexes ``data`` (and the network output's T axis): the frames that become final.
    """

    start: int
    data: np.ndarray
    keep: slice

    @property
    def first_final(self) -> int:
        """Stream index of the first kept frame."""
        return self.start + self.keep.start

    @property
    def n_final(self) -> int:
        return self.keep.stop - self.keep.start


@dataclass(frozen=True)
class FinalBlock:
    """Final probabilities of frames ``first .. first + n - 1``: ``probs`` is ``(n, C, *spatial)``."""

    first: int
    probs: np.ndarray

    @property
    def stop(self) -> int:
        return self.first + self.probs.shape[0]


class Windower:
    """Buffers one stream's frames and cuts them into :class:`Window` objects.

    Parameters
    ----------
    window_frames, hop_frames, margin_left, margin_right : the geometry (see module docstring).
    frame_shape : spatial shape of one frame/line, e.g. ``(512,)`` or ``(64, 512)``.
    first_index : stream index of the first frame that will be pushed.
    """

    def __init__(self, window_frames: int, hop_frames: int, margin_left: int, margin_right: int,
                 frame_shape: tuple[int, ...], first_index: int = 0) -> None:
        self.geometry = WindowGeometry(window_frames, hop_frames, margin_left, margin_right)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self._origin = first_index
        self._frames = FrameRing(self.frame_shape, np.float32, first_index)
        self._next_start = first_index  # start of the next full window
        self._n_final = first_index  # every frame before this index is final
        self._flushed = False

    @classmethod
    def from_geometry(cls, geometry: WindowGeometry, frame_shape: tuple[int, ...],
                      first_index: int = 0) -> Windower:
        return cls(geometry.frames, geometry.hop, geometry.margin_left, geometry.margin_right,
                   frame_shape, first_index)

    @property
    def lookahead_frames(self) -> int:
        """Worst-case built-in look-ahead in frames (see :class:`WindowGeometry`)."""
        return self.geometry.lookahead_frames

    def lookahead_ms(self, dt_ms: float) -> float:
        return self.geometry.lookahead_ms(dt_ms)

    @property
    def next_index(self) -> int:
        """Stream index the next pushed frame must have."""
        return self._frames.stop

    def push(self, first_index: int, frames: np.ndarray) -> list[Window]:
        """Append frames ``first_index ..``; return the windows that became complete."""
        if self._flushed:
            raise RuntimeError("Windower already flushed")
        if first_index != self.next_index:
            raise ValueError(f"frames must be contiguous: expected index {self.next_index}, "
                             f"got {first_index}")
        if tuple(frames.shape[1:]) != self.frame_shape:
            raise ValueError(f"frame shape {tuple(frames.shape[1:])} != {self.frame_shape}")
        windows: list[Window] = []
        step = self.geometry.frames  # bounded buffer even when a whole file is pushed at once
        for i in range(0, frames.shape[0], step):
            self._frames.append(self.next_index, frames[i:i + step])
            windows += self._complete_windows()
            # forget frames no future window (nor the flush window) can contain
            self._frames.release(min(self._next_start, self.next_index - self.geometry.frames))
        return windows

    def _complete_windows(self) -> list[Window]:
        windows = []
        geo = self.geometry
        while self._next_start + geo.frames <= self.next_index:
            keep_first = geo.margin_left if self._next_start > self._origin else 0
            windows.append(self._window(self._next_start, geo.frames,
                                        slice(keep_first, geo.margin_left + geo.hop)))
            self._n_final = self._next_start + geo.margin_left + geo.hop
            self._next_start += geo.hop
        return windows

    def flush(self) -> list[Window]:
        """End of stream: one last window keeping every frame that is not final yet."""
        self._flushed = True
        end = self.next_index
        if self._n_final >= end:
            return []
        frames = self.geometry.frames
        start = max(self._origin, end - frames)
        keep = slice(self._n_final - start, end - start)
        self._n_final = end
        return [self._window(start, end - start, keep)]

    def _window(self, start: int, n_real: int, keep: slice) -> Window:
        data = self._frames.read(start, start + n_real).copy()
        missing = self.geometry.frames - n_real
        if missing > 0:
            pad = [(0, missing)] + [(0, 0)] * len(self.frame_shape)
            data = np.pad(data, pad, mode="reflect" if n_real > 1 else "edge")
        return Window(start, data, keep)


class Stitcher:
    """Turns ``(window, probs)`` pairs into in-order :class:`FinalBlock` objects.

    ``probs`` is the network output for one window, ``(C, frames, *spatial)`` (the backend's
    layout), float32 or float16 (a GPU backend's ``output_dtype``); the kept frames are
    float32. Windows may be added out of order (e.g. batched across streams); blocks are
    released strictly in stream order, each frame exactly once.
    """

    def __init__(self, first_index: int = 0) -> None:
        self._next = first_index
        self._pending: dict[int, FinalBlock] = {}

    @property
    def next_index(self) -> int:
        """Stream index of the next frame to be finalized."""
        return self._next

    def add(self, window: Window, probs: np.ndarray) -> list[FinalBlock]:
        """Register a window's probabilities; return the blocks that are now final, in order."""
        if probs.shape[1] != window.data.shape[0]:
            raise ValueError(f"probs T size {probs.shape[1]} != window frames {window.data.shape[0]}")
        first = window.first_final
        if first < self._next or first in self._pending:
            raise ValueError(f"frames from {first} were already finalized")
        kept = np.ascontiguousarray(np.moveaxis(probs[:, window.keep], 0, 1), dtype=np.float32)
        self._pending[first] = FinalBlock(first, kept)
        out = []
        while self._next in self._pending:
            block = self._pending.pop(self._next)
            out.append(block)
            self._next = block.stop
        return out

    @property
    def n_pending(self) -> int:
        return len(self._pending)
