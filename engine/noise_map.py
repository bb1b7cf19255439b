"""Per-pixel noise maps of a stream, block by block, for the significance test.

Every ``block_ms`` (≈ 400 ms) of raw frames gives one map: per pixel, the temporal noise SD in
counts (1.4826 × median |ΔF| / √2 over the block's consecutive-frame differences: events and
drift barely move it) and the mean counts. :meth:`NoiseMaps.dff0_map_before` returns the noise
SD in ΔF/F0 units (σ / (mean − blank)) of the last *complete* block that ends at or before a
given frame. Which block that is depends only on frame indices, never on how the stream was
chunked or how far the analysis has got, so ``analyze`` and ``serve`` give the same
significance. Maps of the last :data:`KEEP_BLOCKS` blocks are kept (an event starting earlier
than that uses the oldest kept map).

:class:`RestingLevels` keeps, block by block in the same way, each pixel's *resting* ΔF/F0:
its median over the block (at most :data:`RESTING_FRAMES` evenly spaced frames). F0 is
smoothed in space, so where neighbouring pixels differ at rest (a column whose offset or gain
differs from its neighbours', a dim column next to a bright one) ΔF/F0 is not 0 at rest; a
significance taken against each pixel's own resting level does not mistake that fixed offset
for an event (:mod:`engine.significance`).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from scipy import ndimage

from .dense_ops import CPU_OPS, DenseOps

BLOCK_MS = 400.0
MIN_BLOCK_FRAMES = 16
KEEP_BLOCKS = 64
#: frames of a block the resting level is the median of (evenly spaced)
RESTING_FRAMES = 64
#: a resting level is shrunk towards 0 by this many of its own standard errors (only a
#: level that stands out from the median's noise is taken off)
RESTING_SE = 3.0
_MAD_TO_SD = 1.4826


class BlockMaps:
    """Per-pixel maps of blocks of frames ``(n, *frame_shape)`` pushed in order; block ``b``
    holds frames ``b·B .. (b+1)·B − 1`` (B = :attr:`block_frames`), a block with a hole is not
    used. Subclasses say which frames of a block they keep (:meth:`_keeps`) and what map they
    make of them (:meth:`_reduce`)."""

    def __init__(self, frame_shape: tuple[int, ...], dt_ms: float, block_ms: float = BLOCK_MS,
                 dense_ops: DenseOps = CPU_OPS):
        self.dense_ops = dense_ops  # where the medians are taken (:mod:`engine.dense_ops`)
        self.frame_shape = tuple(frame_shape)
        self.block_frames = max(MIN_BLOCK_FRAMES, int(round(block_ms / dt_ms)))
        self._block = -1  # index of the block being filled
        self._seen = 0  # frames of it seen so far
        self._frames: list[np.ndarray] = []
        self._maps: OrderedDict[int, object] = OrderedDict()

    def add(self, first: int, frames: np.ndarray) -> None:
        """Frames ``first, first + 1, ...``."""
        for offset, frame in enumerate(np.asarray(frames)):
            index = first + offset
            block = index // self.block_frames
            if block != self._block or index != block * self.block_frames + self._seen:
                self._block, self._frames, self._seen = block, [], 0
                if index != block * self.block_frames:
                    continue  # joined mid-block: wait for the next one
            if self._keeps(self._seen):
                self._frames.append(np.asarray(frame, np.float32))
            self._seen += 1
            if self._seen == self.block_frames:
                self._maps[self._block] = self._reduce(np.stack(self._frames))
                self._frames, self._seen = [], 0
                while len(self._maps) > KEEP_BLOCKS:
                    self._maps.popitem(last=False)

    def _latest_before(self, frame: int):
        """The map of the last complete block ending at or before ``frame`` (None if none)."""
        usable = [b for b in self._maps if (b + 1) * self.block_frames <= frame]
        return self._maps[max(usable)] if usable else None

    def _keeps(self, offset: int) -> bool:
        return True

    def _reduce(self, block: np.ndarray):
        raise NotImplementedError


class NoiseMaps(BlockMaps):
    """Block-wise noise maps of raw frames (module docstring)."""

    def dff0_map_before(self, frame: int, blank: float | None) -> np.ndarray | None:
        """Noise SD in ΔF/F0 of the last complete block ending at or before ``frame``
        (None before the first block or without a blank)."""
        maps = None if blank is None else self._latest_before(frame)
        if maps is None:
            return None
        sd, mean = maps
        f0 = mean - np.float32(blank)
        f0 = np.maximum(f0, max(0.2 * float(np.percentile(f0, 95)), 1e-3))
        return ndimage.gaussian_filter(sd / f0, 1.0, mode="nearest")

    def _reduce(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sd = _difference_sd(block, self.dense_ops)
        return sd.astype(np.float32), block.mean(axis=0).astype(np.float32)


class RestingLevels(BlockMaps):
    """Block-wise resting ΔF/F0 of each pixel: the median of at most :data:`RESTING_FRAMES`
    evenly spaced ΔF/F0 frames of the block (an event that lasts less than half the block
    does not move it), shrunk towards 0 by :data:`RESTING_SE` standard errors of that median
    (a pixel is corrected only where its offset stands out from the median's own noise)."""

    def __init__(self, frame_shape: tuple[int, ...], dt_ms: float, block_ms: float = BLOCK_MS,
                 dense_ops: DenseOps = CPU_OPS):
        super().__init__(frame_shape, dt_ms, block_ms, dense_ops)
        self._stride = max(1, math.ceil(self.block_frames / RESTING_FRAMES))

    def map_before(self, frame: int) -> np.ndarray | None:
        """Resting ΔF/F0 ``frame_shape`` of the last complete block ending at or before
        ``frame`` (None before the first block)."""
        return self._latest_before(frame)

    def _keeps(self, offset: int) -> bool:
        return offset % self._stride == 0

    def _reduce(self, block: np.ndarray) -> np.ndarray:
        level = self.dense_ops.median(block)
        # the median's own noise (1.2533 SD / √n; SD from the differences of the kept frames)
        # must not shift every event: shrink each level towards 0 by RESTING_SE of it
        sd = _difference_sd(block, self.dense_ops)
        margin = RESTING_SE * 1.2533 * sd / math.sqrt(block.shape[0])
        return (np.sign(level) * np.maximum(np.abs(level) - margin, 0.0)).astype(np.float32)


def _difference_sd(block: np.ndarray, ops: DenseOps = CPU_OPS) -> np.ndarray:
    """Per-pixel noise SD of a block ``(n, *frame_shape)``: 1.4826 × median |difference of
    consecutive frames| / √2 (slow signal, drift and events barely move it)."""
    return _MAD_TO_SD * ops.median_abs_difference(block) / math.sqrt(2.0)
