"""Per-pixel noise maps of a stream, block by block, for the significance test.

Every ``block_ms`` (≈ 400 ms) of raw frames gives one map: per pixel, the temporal noise SD in
counts (1.4826 × median |ΔF| / √2 over the block's consecutive-frame differences: events and
drift barely move it) and the mean counts. :meth:`NoiseMaps.dff0_map_before` returns the noise
SD in ΔF/F0 units (σ / (mean − blank)) of the last *complete* block that ends at or before a
given frame. Which block that is depends only on frame indices, never on how the stream was
chunked or how far the analysis has got, so ``analyze`` and ``serve`` give the same
significance. Maps of the last :data:`KEEP_BLOCKS` blocks are kept (an event starting earlier
than that uses the oldest kept map).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from scipy import ndimage

BLOCK_MS = 400.0
MIN_BLOCK_FRAMES = 16
KEEP_BLOCKS = 64
_MAD_TO_SD = 1.4826


class NoiseMaps:
    """Block-wise noise maps of raw frames ``(n, *frame_shape)`` pushed in order; block ``b``
    holds frames ``b·B .. (b+1)·B − 1`` (B = :attr:`block_frames`)."""

    def __init__(self, frame_shape: tuple[int, ...], dt_ms: float, block_ms: float = BLOCK_MS):
        self.frame_shape = tuple(frame_shape)
        self.block_frames = max(MIN_BLOCK_FRAMES, int(round(block_ms / dt_ms)))
        self._block = -1  # index of the block being filled
        self._frames: list[np.ndarray] = []
        self._maps: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def add(self, first: int, frames: np.ndarray) -> None:
        """Raw frames ``first, first + 1, ...`` (a block with a hole is not used)."""
        for offset, frame in enumerate(np.asarray(frames, np.float32)):
            index = first + offset
            block = index // self.block_frames
            if block != self._block or index != block * self.block_frames + len(self._frames):
                self._block, self._frames = block, []
                if index != block * self.block_frames:
                    continue  # joined mid-block: wait for the next one
            self._frames.append(frame)
            if len(self._frames) == self.block_frames:
                self._close_block()

    def dff0_map_before(self, frame: int, blank: float | None) -> np.ndarray | None:
        """Noise SD in ΔF/F0 of the last complete block ending at or before ``frame``
        (None before the first block or without a blank)."""
        if blank is None or not self._maps:
            return None
        usable = [b for b in self._maps if (b + 1) * self.block_frames <= frame]
        if not usable:
            return None
        sd, mean = self._maps[max(usable)]
        f0 = mean - np.float32(blank)
        f0 = np.maximum(f0, max(0.2 * float(np.percentile(f0, 95)), 1e-3))
        return ndimage.gaussian_filter(sd / f0, 1.0, mode="nearest")

    def _close_block(self) -> None:
        block = np.stack(self._frames)
        self._frames = []
        sd = _MAD_TO_SD * np.median(np.abs(np.diff(block, axis=0)), axis=0) / math.sqrt(2.0)
        self._maps[self._block] = (sd.astype(np.float32), block.mean(axis=0).astype(np.float32))
        while len(self._maps) > KEEP_BLOCKS:
            self._maps.popitem(last=False)
