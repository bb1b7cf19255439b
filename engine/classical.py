"""A network-free spark detector (Cheng et al. 1999 / SparkMaster style), as a drop-in backend.

It turns ΔF/F0 into a *pseudo-probability* block ``(n, 4, *spatial)`` (bg, spark, wave, puff) so
that the very same :class:`~engine.postprocess.InstanceTracker` and characterization follow:

1. smooth ΔF/F0 with a Gaussian (``sigma_ms`` in time, ``sigma_um`` in space);
2. robust noise SD per frame: 1.4826 × MAD of the smoothed frame over its pixels (a line of a
   line-scan, a frame of a movie) — a property of the frame, never of the block;
3. z = smoothed / SD; P(spark) = clip(z / (2 k_detect), 0, 1), P(bg) = 1 − P(spark).

With :attr:`ClassicalDetector.thresholds` the tracker then keeps pixels with z ≥ ``k_grow`` that
belong to a region containing at least one pixel with z ≥ ``k_detect`` (hysteresis: candidates
at ``k_detect`` SDs (SparkMaster's criterion), grown down to the lower threshold), and applies the usual
size filters and peak/watershed splitting. Everything is called a spark.

Streaming: the smoothing needs :attr:`ClassicalDetector.context_frames` frames on each side.
``predict_block(dff0, n_before, n_after)`` takes a block with whatever context is available
(``n_before``/``n_after`` ≤ ``context_frames``; fewer only at the stream's ends) and pads it to
the full context by repeating the edge frame, so a frame's output does not depend on how the
stream was cut into blocks; its look-ahead is ``context_frames``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from acquisition.labels import BACKGROUND, SPARK

_MAD_TO_SD = 1.4826
_TRUNCATE = 3.0


class ClassicalDetector:
    """Robust-SD thresholding of smoothed ΔF/F0.

    Parameters
    ----------
    pixel_um, dt_ms : float
        Calibration.
    k_detect : float
        Candidate criterion in noise SDs of the *smoothed* frame. SparkMaster's 3.8 is applied
        to a less smoothed image; with this smoothing 3.8 gives ~4 false sparks per second of a
        512-px line-scan at 20 photons/px, 5.0 none (tuned on tests/test_classical.py data).
    k_grow : float
        Lower threshold, in SDs, down to which a candidate region is grown.
    sigma_ms, sigma_um : float
        Gaussian smoothing in time and space.
    linescan : bool
        Frames are ``(X,)`` lines (True) or ``(Y, X)`` images (False).
    """

    def __init__(
        self,
        pixel_um: float,
        dt_ms: float,
        k_detect: float = 5.0,
        k_grow: float = 2.5,
        sigma_ms: float = 4.0,
        sigma_um: float = 0.3,
        linescan: bool = True,
    ) -> None:
        if not 0 < k_grow <= k_detect:
            raise ValueError(f"need 0 < k_grow <= k_detect, got {k_grow}, {k_detect}")
        self.k_detect, self.k_grow = float(k_detect), float(k_grow)
        self.sigma_frames = sigma_ms / dt_ms
        self.sigma_px = sigma_um / pixel_um
        self.linescan = linescan
        self.context_frames = int(math.ceil(_TRUNCATE * self.sigma_frames))

    @property
    def thresholds(self) -> dict[str, float]:
        """Tracker thresholds matching the pseudo-probability scale (foreground and seed)."""
        scale = 2.0 * self.k_detect
        return {"foreground": self.k_grow / scale, "seed": self.k_detect / scale}

    def predict_block(self, dff0: np.ndarray, n_before: int = 0, n_after: int = 0) -> np.ndarray:
        """Pseudo-probabilities of the central frames of ``dff0``.

        Parameters
        ----------
        dff0 : ndarray, shape (n_before + n + n_after, *spatial)
            ΔF/F0 with context frames.
        n_before, n_after : int
            Context frames included before/after the ``n`` frames to predict.

        Returns
        -------
        ndarray of float32, shape (n, 4, *spatial)
        """
        ctx = self.context_frames
        if n_before > ctx or n_after > ctx:
            trim_before, trim_after = max(0, n_before - ctx), max(0, n_after - ctx)
            dff0 = dff0[trim_before : dff0.shape[0] - trim_after]
            n_before, n_after = n_before - trim_before, n_after - trim_after
        pad = [(ctx - n_before, ctx - n_after)] + [(0, 0)] * (dff0.ndim - 1)
        padded = np.pad(np.asarray(dff0, dtype=np.float32), pad, mode="edge")
        smoothed = self._smooth(padded)[ctx : padded.shape[0] - ctx]
        z = smoothed / self._frame_sd(smoothed)
        spark = np.clip(z / (2.0 * self.k_detect), 0.0, 1.0)
        probs = np.zeros((spark.shape[0], 4, *spark.shape[1:]), dtype=np.float32)
        probs[:, SPARK] = spark
        probs[:, BACKGROUND] = 1.0 - spark
        return probs

    def _smooth(self, frames: np.ndarray) -> np.ndarray:
        spatial = [self.sigma_px] * (frames.ndim - 1)
        sigma = [self.sigma_frames, *spatial]
        return ndimage.gaussian_filter(frames, sigma=sigma, mode="nearest", truncate=_TRUNCATE)

    @staticmethod
    def _frame_sd(frames: np.ndarray) -> np.ndarray:
        """1.4826 × MAD over each frame's pixels, shaped to broadcast against ``frames``."""
        flat = frames.reshape(frames.shape[0], -1)
        median = np.median(flat, axis=1, keepdims=True)
        sd = _MAD_TO_SD * np.median(np.abs(flat - median), axis=1)
        sd = np.maximum(sd, 1e-6)
        return sd.reshape((-1,) + (1,) * (frames.ndim - 1))
