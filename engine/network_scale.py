"""The network sees a stream at the pixel size and frame interval it was trained on.

A convolutional detector learns event shapes in *samples*. A spark 2 µm wide is 10 pixels at
0.2 µm/px but 23 at 0.088 µm/px; a spark 30 ms long is 4 frames at 6.8 ms/frame but 2 at
14 ms -- shapes a network trained on 0.15–0.25 µm and 5–8 ms has never seen. So when a
stream's calibration lies outside the model's trained range (``config.json``
``calibration.trained_range``) and the model asks for it (``calibration.resample_pixels``),
the network's input is resampled to the nearest edge of that range and its probabilities back
to the stream's samples; a stream inside the range is not touched (nothing changes for it).
Only the network's view changes: ΔF/F0, the classical detector, the tracker, the significance
test and the characterization keep the stream's own samples.

* space (:class:`SpatialResampler`): each frame on its own, before the windows are cut;
* time (:class:`TemporalResampler`): each network window on its own (its frames to the trained
  interval, the window's probabilities back to its frames), so the stitching, margins and
  look-ahead stay in stream frames.

Bilinear, with area-averaging first along an axis that shrinks (no aliasing). Every frame or
window is resampled independently of the others, so the result does not depend on how the
stream is cut into chunks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import sparse
from skimage.transform import resize

#: resample only when a calibration value is off the trained range by more than this fraction
#: of the range's edge
TOLERANCE = 0.02


def network_calibration(value: float, trained_range: dict | None, key: str) -> float:
    """What the network should see of ``key`` (``"pixel_um"`` or ``"dt_ms"``): ``value``
    clipped into the trained range (as is inside it, or with no range)."""
    span = (trained_range or {}).get(key)
    if not span:
        return float(value)
    lo, hi = float(span[0]), float(span[1])
    if lo * (1 - TOLERANCE) <= value <= hi * (1 + TOLERANCE):
        return float(value)
    return float(min(max(value, lo), hi))


class SpatialResampler:
    """Frames ``(n, *spatial)`` of a stream to the network's pixel size and probabilities
    ``(n, classes, *spatial')`` back. ``identity`` when no resampling is needed."""

    def __init__(self, frame_shape: tuple[int, ...], pixel_um: float, network_pixel: float):
        self.frame_shape = tuple(int(n) for n in frame_shape)
        scale = float(pixel_um) / float(network_pixel)  # > 1: the network sees more pixels
        self.network_shape = tuple(max(1, int(round(n * scale))) for n in self.frame_shape)
        self.identity = self.network_shape == self.frame_shape

    def to_network(self, frames: np.ndarray) -> np.ndarray:
        """``(n, *frame_shape)`` → ``(n, *network_shape)``, float32."""
        if self.identity:
            return frames
        if frames.shape[0] == 0:
            return np.zeros((0, *self.network_shape), np.float32)
        return _resize(frames, (frames.shape[0], *self.network_shape))

    def to_stream(self, probs: np.ndarray) -> np.ndarray:
        """``(n, classes, *network_shape)`` → ``(n, classes, *frame_shape)``, renormalized so
        the classes of each pixel sum to 1 again."""
        if self.identity:
            return probs
        if probs.shape[0] == 0:
            return np.zeros(probs.shape[:2] + self.frame_shape, probs.dtype)
        return _class_probabilities(_resize(probs, probs.shape[:2] + self.frame_shape),
                                    axis=1, dtype=probs.dtype)


class TemporalResampler:
    """A network window ``(frames, *spatial)`` to the network's frame interval and its
    probabilities ``(classes, frames', *spatial)`` back. ``identity`` when not needed."""

    def __init__(self, window_frames: int, dt_ms: float, network_dt_ms: float) -> None:
        self.window_frames = int(window_frames)
        scale = float(dt_ms) / float(network_dt_ms)  # > 1: the network sees more frames
        self.network_frames = max(1, int(round(self.window_frames * scale)))
        self.identity = self.network_frames == self.window_frames

    def to_network(self, window: np.ndarray) -> np.ndarray:
        if self.identity:
            return window
        return _resize(window, (self.network_frames, *window.shape[1:]))

    def to_stream(self, probs: np.ndarray) -> np.ndarray:
        if self.identity:
            return probs
        return _class_probabilities(
            _resize(probs, (probs.shape[0], self.window_frames, *probs.shape[2:])),
            axis=0, dtype=probs.dtype)


def _class_probabilities(resampled: np.ndarray, axis: int, dtype) -> np.ndarray:
    """Resampled probabilities made probabilities again: no negative value (bilinear
    interpolation of non-negative values has none, anti-aliasing may), classes along ``axis``
    summing to 1 at every pixel."""
    out = np.clip(resampled, 0.0, None)
    out /= np.maximum(out.sum(axis=axis, keepdims=True), 1e-6)
    return out.astype(dtype, copy=False)


def _resize(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Bilinear resize of the trailing spatial axes; leading axes keep their size (so every
    frame is resampled on its own), with anti-aliasing where an axis shrinks.

    skimage's ``resize`` (``order=1``, edge mode) where an axis shrinks; where none does (the
    probabilities going back to a finer stream, the costly direction) the same interpolation
    as one sparse two-tap matrix per axis, several times faster and equal to it bit for bit
    (``tests/test_network_scale.py``)."""
    array = np.asarray(array, np.float32)
    shrinking = any(new < old for new, old in zip(shape, array.shape, strict=True))
    if shrinking:
        return resize(array, shape, order=1, mode="edge", anti_aliasing=True,
                      preserve_range=True).astype(np.float32)
    if array.size == 0:
        return np.zeros(shape, np.float32)
    out = array
    for axis, (new, old) in enumerate(zip(shape, array.shape, strict=True)):
        if new != old:
            out = _interpolate_axis(out, new, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


@lru_cache(maxsize=64)
def _interpolation_matrix(old: int, new: int) -> sparse.csr_matrix:
    """``(new, old)`` weights of linear interpolation from ``old`` to ``new`` samples on the
    pixel-centre grid (sample ``i`` of ``new`` at ``(i + 0.5) · old / new − 0.5``; beyond the
    edge samples the edge value): what ``scipy.ndimage.zoom(order=1, grid_mode=True,
    mode="nearest")``, and so skimage's ``resize``, computes."""
    at = np.clip((np.arange(new) + 0.5) * (old / new) - 0.5, 0.0, old - 1.0)
    lower = np.floor(at).astype(np.intp)
    upper = np.minimum(lower + 1, old - 1)
    weight = at - lower
    rows = np.repeat(np.arange(new), 2)
    cols = np.stack([lower, upper], axis=1).ravel()
    values = np.stack([1.0 - weight, weight], axis=1).ravel()
    return sparse.csr_matrix((values, (rows, cols)), shape=(new, old))


def _interpolate_axis(array: np.ndarray, new: int, axis: int) -> np.ndarray:
    """``array`` linearly interpolated to ``new`` samples along ``axis`` (float64 out)."""
    moved = np.moveaxis(array, axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = (_interpolation_matrix(moved.shape[0], int(new)) @ flat).reshape(
        (int(new), *moved.shape[1:]))
    return np.moveaxis(out, 0, axis)
