"""A network-free detector of sparks, puffs and waves (SparkMaster / SparkMaster 2 style), as a
drop-in backend of the streaming engine.

It turns ΔF/F0 into a *pseudo-probability* block ``(n, 4, *spatial)`` (bg, spark, wave, puff) so
that the very same :class:`~engine.postprocess.InstanceTracker` and characterization follow.

Method (after Picht et al. 2007 and Tomek et al. 2023; details in :mod:`engine.classical_noise`
and :mod:`engine.classical_classes`), all in physical units (µm, ms):

1. **background normalization**: F/F0 = 1 + ΔF/F0; each frame's fast level change (a low
   quantile of its cell pixels against their mean over ±``flicker_ms``) is divided out (per-line
   laser flicker), then each pixel is divided by its own level over a causal window of
   ``window_ms`` (per-column fixed-pattern gain, bright/dim bands, nucleus, drift, bleaching);
   pixels whose level is below ``min_ratio`` (F0 floored by the preprocessor: extracellular
   space) are never foreground;
2. **noise SD per pixel** (per column of a line-scan): from first differences in time over the
   same causal window, pooled over ±``pool_um`` — a dim band, the nucleus or a noisy column is
   judged against its own noise, not the line's;
3. **SD transform**: the normalized signal is smoothed with a Gaussian (``sigma_ms``,
   ``sigma_um``) and divided by the noise SD of the smoothed image (pixel SD × the kernel's
   noise gain): z in noise SDs;
4. **two passes**: pixels near a z ≥ ``k_exclude`` (±``exclude_ms``, ±``exclude_um``) are left
   out of the level, and z is computed again (SparkMaster's candidates excluded from the
   background);
5. **extent**: pixels with z ≥ ``k_grow`` and ≥ ``relative_grow`` × the largest z within
   ±``relative_ms``/±``relative_um`` (the ground truth's "≥ 20 % of the peak") are foreground;
   P(event) = clip(z / (2 ``k_detect``), 0, 1) there, and :attr:`ClassicalDetector.thresholds`
   make the tracker keep foreground regions reaching z ≥ ``k_detect`` (hysteresis);
6. **classes**: per connected stretch of foreground within a frame — wave if within
   ±``wave_spread_ms``/±``wave_spread_um`` of a stretch ≥ ``wave_min_um`` wide; puff if it is
   ≥ ``puff_min_um`` wide and mostly stays above half its local maximum for ≥ ``puff_min_ms``;
   else spark. The tracker's majority vote, size filters and peak splitting follow.

Defaults (:data:`LINESCAN`, :data:`MOVIE`) were tuned on the simulator's *validation* split
only (``SimulatedSource(split="val")``), never on the test split: line-scans on 12 recordings
each of 7 conditions — nominal (0.14 µm, 1.5 ms, 15 photons/px), pixel 0.10 µm / 1.0 ms,
0.20 µm / 2.0 ms, 5 photons/px, and three with added background artefacts (per-column gain
±15 %, per-line flicker 3 %, a dim band at 35–60 %, a block of extracellular columns, ±10 %
linear drift, bleaching τ 12–20 s; at 0.14, 0.10 and 0.20 µm) — maximizing the mean spark F1
(through the engine: 0.759 with the previous per-line-SD detector → 0.927); movies on 6
validation movies per condition (spark F1 at raised wave/puff rates 0.144 → 0.732, at the
simulator's WT rates 0.201 → 0.863, with the background artefacts 0.027 → 0.690). Grid
steps: k_detect 4.5–6.5 (line-scans) / 5.5–7.5 (movies), k_grow 2–4.5, sigma_um
0.3–0.8, sigma_ms 4–8, relative_grow 0–0.5, wave spread 60–100 ms × 3–6 µm, flicker window
30/60 ms × quantile 0.3/0.45. k_detect 4.5–5.5 tie on line-scans once the engine's
significance check runs; 5.5, the most conservative, is kept. Movies want a higher criterion
(a 3-D volume holds more noise samples) and tighter extents (the tracker's peak splitting cuts
large noisy regions into several sparks); a wider spatial smoothing (0.8 µm) finds more movie
puffs (F1 0.47 → 0.66) but fewer sparks (0.72 → 0.68). Movies then got stricter criteria
and their own significance threshold (k_detect 7.0, k_grow 5.0, min_significance 8.0, where
line-scans keep the engine's default 5.0), chosen on validation movies of both generators and
empty ones (``python -m offline.experiments.classical_movie``; development spark F1 0.342 →
0.541, simulator 0.731 → 0.779, false events on empty movies 0.12 → 0 per s).

Streaming (:class:`ClassicalStream`): frame ``t``'s output depends on frames
``t − context_before .. t + context_after`` only (flicker window, smoothing, exclusion, extent
and class rules). Windowed sums are exact integers and every stage has a fixed context
(:mod:`engine.classical_stream`), so a frame's output does not depend on how the stream was cut
into chunks. Frames enter the stages in batches of at least ``emit_ms`` (each batch recomputes
its stages' context frames, so 4-frame chunks cost 14 times the work), which makes the
worst-case look-ahead ``context_after + emit_frames − 1`` (``lookahead_frames``); z is its own
stage (once per frame), and the peak, dilation and class rules run only on the padded bounding
box of the pixels that can be foreground. ``predict_block(dff0, n_before, n_after)`` runs a
fresh stream over one block; a block with less than ``context_before`` frames before must
start at the stream's first frame (the causal windows are shorter there, and z is 0 until a
quarter of the window has been seen), one with less than ``context_after`` after must end at
its last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from acquisition.labels import BACKGROUND, PUFF, SPARK, WAVE
from acquisition.stream_kind import StreamKind

from .boxes import padded_box
from .classical_classes import ClassRules
from .classical_noise import BackgroundState, remove_flicker
from .classical_stream import ContextStage
from .dense_ops import CPU_OPS, DenseOps
from .significance import DEFAULT_MIN_SIGNIFICANCE

_TRUNCATE = 3.0


@dataclass(frozen=True)
class ClassicalParams:
    """Parameters of the classical detector, in physical units (see the module docstring)."""

    k_detect: float = 5.5  # seed criterion, noise SDs of the smoothed image
    k_grow: float = 3.5  # extent criterion (hysteresis), noise SDs
    relative_grow: float = 0.2  # extent: also ≥ this fraction of the local peak z
    relative_ms: float = 40.0  # neighbourhood of that local peak, ±ms
    relative_um: float = 2.0  # and ±µm
    sigma_ms: float = 4.0  # Gaussian smoothing in time
    sigma_um: float = 0.5  # and in space
    window_ms: float = 400.0  # causal window of the per-pixel level and noise SD
    pool_um: float = 0.5  # noise SD pooled over ±µm
    min_ratio: float = 0.5  # F/F0 level below which a pixel is outside the cell
    flicker_quantile: float = 0.3  # a frame's level: this quantile of its cell pixels
    flicker_ms: float = 30.0  # its slow part: mean level over ±ms
    k_exclude: float = 3.0  # second pass: pixels near z ≥ this leave the level
    exclude_ms: float = 10.0  # "near": ±ms
    exclude_um: float = 1.0  # and ±µm
    wave_min_um: float = 15.0  # a stretch this wide makes a wave (Dotti's wave size filter)
    wave_spread_ms: float = 100.0  # stretches this close to it too, ±ms
    wave_spread_um: float = 3.0  # and ±µm
    wave_min_ms: float = 0.0  # the wide stretch must stay wide this long (0: any)
    puff_min_ms: float = 70.0  # puff: ≥ half its local maximum for this long
    puff_window_ms: float = 60.0  # local maximum and duration over ±ms
    puff_min_um: float = 2.5  # puff: stretch at least this wide
    bridge_um: float = 0.5  # gaps bridged when forming stretches
    # streaming: frames go through the stages in batches of at least this long (each batch
    # recomputes its stages' context frames, so tiny batches multiply the work); the
    # look-ahead grows by up to this much. Results do not depend on it.
    emit_ms: float = 100.0
    min_significance: float = DEFAULT_MIN_SIGNIFICANCE  # events below it are not reported


#: tuned defaults for line-scans and for movies (module docstring)
LINESCAN = ClassicalParams()
MOVIE = replace(LINESCAN, k_detect=7.0, k_grow=5.0, relative_grow=0.35, min_significance=8.0)


def _gaussian_noise_gain(sigma: float) -> float:
    """√Σw² of the discrete Gaussian kernel that ``gaussian_filter1d`` uses."""
    if sigma <= 0:
        return 1.0
    impulse = np.zeros(2 * int(math.ceil(_TRUNCATE * sigma)) + 1)
    impulse[impulse.size // 2] = 1.0
    weights = ndimage.gaussian_filter1d(impulse, sigma, truncate=_TRUNCATE, mode="constant")
    return float(np.sqrt(np.sum(weights**2)))


class ClassicalDetector:
    """SD-criterion detection on background-normalized, per-pixel noise-scaled ΔF/F0.

    Parameters
    ----------
    pixel_um, dt_ms : float
        Calibration.
    stream_kind : StreamKind
        ``LINESCAN`` (frames are ``(X,)`` lines) or ``MOVIE`` (``(Y, X)`` images); selects the
        defaults (:data:`LINESCAN` or :data:`MOVIE`).
    dense_ops : DenseOps
        Where the smoothing and the noise SD's window sums run (:mod:`engine.dense_ops`:
        the CPU, or the GPU of the stream's network); the same numbers either way.
    **overrides
        Fields of :class:`ClassicalParams` to change.
    """

    def __init__(self, pixel_um: float, dt_ms: float,
                 stream_kind: StreamKind = StreamKind.LINESCAN, dense_ops: DenseOps = CPU_OPS,
                 **overrides: float) -> None:
        self.dense_ops = dense_ops
        linescan = stream_kind.is_linescan
        p = replace(LINESCAN if linescan else MOVIE, **overrides)
        if not 0 < p.k_grow <= p.k_detect:
            raise ValueError(f"need 0 < k_grow <= k_detect, got {p.k_grow}, {p.k_detect}")
        self.params, self.stream_kind = p, stream_kind
        self.k_detect, self.k_grow = float(p.k_detect), float(p.k_grow)
        self.sigma_frames, self.sigma_px = p.sigma_ms / dt_ms, p.sigma_um / pixel_um
        self.window = max(2, int(round(p.window_ms / dt_ms)))
        self.pool_px = int(round(p.pool_um / pixel_um))
        self.flicker_radius = max(1, int(math.ceil(p.flicker_ms / dt_ms)))
        self._exclude = _frames_px(p.exclude_ms, p.exclude_um, dt_ms, pixel_um)
        self._relative = _frames_px(p.relative_ms, p.relative_um, dt_ms, pixel_um)
        self._noise_gain = (_gaussian_noise_gain(self.sigma_frames)
                            * _gaussian_noise_gain(self.sigma_px) ** (1 if linescan else 2))
        self._classes = ClassRules(p, pixel_um, dt_ms, dense_ops)
        self.smooth_radius = int(math.ceil(_TRUNCATE * self.sigma_frames))
        #: frames of context of the last stage (z, extent, classes) on each side
        self.output_context = self.smooth_radius + self._relative[0] + self._classes.context
        #: frames after (the look-ahead) and before a frame that its output depends on
        self.context_after = (self.flicker_radius + self.smooth_radius + self._exclude[0]
                              + self.output_context)
        self.context_before = self.context_after + 3 * self.window + 1
        #: frames the first stage waits for before computing (``emit_ms``)
        self.emit_frames = max(1, int(math.ceil(p.emit_ms / dt_ms)))

    @property
    def exclude_frames(self) -> int:
        """Half-size in frames of the neighbourhood of a candidate left out of the level."""
        return self._exclude[0]

    @property
    def lookahead_frames(self) -> int:
        """Worst-case look-ahead of a stream: the context after a frame, plus the frames it
        may wait for its batch (``emit_frames - 1``)."""
        return self.context_after + self.emit_frames - 1

    @property
    def thresholds(self) -> dict[str, float]:
        """Tracker thresholds matching the pseudo-probability scale (foreground and seed)."""
        scale = 2.0 * self.k_detect
        return {"foreground": self.k_grow / scale, "seed": self.k_detect / scale,
                "min_significance": self.params.min_significance}

    def stream(self) -> ClassicalStream:
        """A fresh streaming state (one per stream)."""
        return ClassicalStream(self)

    def predict_block(self, dff0: np.ndarray, n_before: int = 0, n_after: int = 0) -> np.ndarray:
        """Pseudo-probabilities of the central frames of ``dff0``.

        Parameters
        ----------
        dff0 : ndarray, shape (n_before + n + n_after, *spatial)
            ΔF/F0 with context frames (see the module docstring).
        n_before, n_after : int
            Context frames included before/after the ``n`` frames to predict.

        Returns
        -------
        ndarray of float32, shape (n, 4, *spatial)
        """
        trim_before = max(0, n_before - self.context_before)
        trim_after = max(0, n_after - self.context_after)
        dff0 = np.asarray(dff0, dtype=np.float32)[trim_before:dff0.shape[0] - trim_after]
        n_before, n_after = n_before - trim_before, n_after - trim_after
        stream = self.stream()
        probs = np.concatenate([stream.push(dff0), stream.flush()])
        return probs[n_before:probs.shape[0] - n_after]

    # -- stage functions (chunk with context in, central frames out) --------------------------
    def _flicker_stage(self, arrays: tuple[np.ndarray, ...], n_before: int,
                       n_after: int) -> tuple[np.ndarray, ...]:
        ratio, raw_level = arrays
        q = remove_flicker(ratio, raw_level, self.params.min_ratio, self.params.flicker_quantile,
                           self.flicker_radius, self.dense_ops)
        return (q[n_before:q.shape[0] - n_after],)

    def _candidate_stage(self, arrays: tuple[np.ndarray, ...], n_before: int,
                         n_after: int) -> tuple[np.ndarray, ...]:
        """First pass: pixels to keep in the background level (not near a z ≥ k_exclude)."""
        q, level, sd, in_cell = arrays
        frames, px = self._exclude
        half = (frames,) + (px,) * (q.ndim - 1)
        hits = self._z(q, level, sd, in_cell) >= self.params.k_exclude
        candidates = np.zeros(hits.shape, bool)
        box = padded_box(hits, half)  # nothing to dilate outside it
        if box is not None:
            candidates[box] = self.dense_ops.maximum_filter(hits[box], [2 * h + 1 for h in half])
        central = slice(n_before, q.shape[0] - n_after)
        return q[central], level[central], sd[central], in_cell[central], ~candidates[central]

    def _z_stage(self, arrays: tuple[np.ndarray, ...], n_before: int,
                 n_after: int) -> tuple[np.ndarray, ...]:
        """Second pass: z against the level without candidates (computed once per frame)."""
        z = self._z(*arrays)
        return (z[n_before:z.shape[0] - n_after],)

    def _output_stage(self, arrays: tuple[np.ndarray, ...], n_before: int,
                      n_after: int) -> tuple[np.ndarray, ...]:
        """Extent, classes, pseudo-probabilities from z."""
        z = arrays[0]
        frames, px = self._relative
        half = (frames,) + (px,) * (z.ndim - 1)
        foreground = relative_extent(z, self.k_grow, self.params.relative_grow, half)
        z = np.where(foreground, z, np.float32(0.0))
        wave, puff = self._classes.classify(z, foreground)
        central = slice(n_before, z.shape[0] - n_after)
        event = np.clip(z[central] / (2.0 * self.k_detect), 0.0, 1.0)
        probs = np.zeros((event.shape[0], 4, *event.shape[1:]), dtype=np.float32)
        probs[:, BACKGROUND] = 1.0 - event
        probs[:, WAVE] = np.where(wave[central], event, 0.0)
        probs[:, PUFF] = np.where(puff[central], event, 0.0)
        probs[:, SPARK] = event - probs[:, WAVE] - probs[:, PUFF]
        return (probs,)

    def _z(self, q: np.ndarray, level: np.ndarray, sd: np.ndarray,
           in_cell: np.ndarray) -> np.ndarray:
        """Smoothed ``q / level − 1`` in noise SDs of the smoothed image (0 outside the cell)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            signal = np.where(in_cell, q / level - np.float32(1.0), np.float32(0.0))
            sigma = [self.sigma_frames] + [self.sigma_px] * (q.ndim - 1)
            smoothed = self.dense_ops.gaussian_filter(signal, sigma, _TRUNCATE)
            z = smoothed / (sd * np.float32(self._noise_gain))
        return np.where(in_cell & np.isfinite(z), z, np.float32(0.0)).astype(np.float32)


class ClassicalStream:
    """One stream through the detector's stages: flicker → level and noise SD (first pass) →
    candidates → level without them (second pass) and z → extent, classes and
    pseudo-probabilities.

    :meth:`push` takes ΔF/F0 frames in order (any chunks) and returns the pseudo-probabilities
    ``(m, 4, *spatial)`` of the next ``m`` frames (possibly 0); :meth:`flush` the rest.
    """

    def __init__(self, detector: ClassicalDetector) -> None:
        self._detector = detector
        smooth, exclude = detector.smooth_radius, detector.exclude_frames
        self._flicker = ContextStage(detector._flicker_stage, detector.flicker_radius,
                                     detector.flicker_radius, min_emit=detector.emit_frames)
        self._background = BackgroundState(detector.window, detector.pool_px,
                                           detector.params.min_ratio, detector.dense_ops)
        self._candidates = ContextStage(detector._candidate_stage, smooth + exclude,
                                        smooth + exclude)
        self._zstage = ContextStage(detector._z_stage, smooth, smooth)
        context = detector.output_context - smooth
        self._output = ContextStage(detector._output_stage, context, context)
        self._spatial: tuple[int, ...] | None = None

    def push(self, dff0: np.ndarray) -> np.ndarray:
        dff0 = np.asarray(dff0, np.float32)
        self._spatial = dff0.shape[1:]
        ratio = dff0 + np.float32(1.0)
        return self._run((ratio, self._background.raw_level(ratio)), final=False)

    def flush(self) -> np.ndarray:
        return self._run(None, final=True)

    def _run(self, ratio: tuple[np.ndarray, ...] | None, final: bool) -> np.ndarray:
        q = self._flicker.feed(ratio, final)
        first = None if q is None else (q[0], *self._background.first_pass(q[0]))
        candidates = self._candidates.feed(first, final)
        second = None
        if candidates is not None:
            q, level, sd, in_cell, keep = candidates
            second = (q, self._background.second_pass(q, level, keep), sd, in_cell)
        out = self._output.feed(self._zstage.feed(second, final), final)
        if out is None:
            return np.zeros((0, 4, *(self._spatial or ())), np.float32)
        return out[0]


def relative_extent(z: np.ndarray, k_grow: float, relative_grow: float,
                    half: tuple[int, ...]) -> np.ndarray:
    """Pixels with ``z ≥ k_grow`` and ``z ≥ relative_grow ×`` the largest z within ``±half``
    (per axis, clipped to the array).

    Only a *strong* pixel, one with ``relative_grow × z > k_grow``, can fail a pixel of
    ``z ≥ k_grow``, so the local maximum is taken over the strong pixels alone, on the padded
    bounding box of each connected group of them: the same mask as a maximum filter of the
    whole array (the products are computed alike, and rounding is monotonic), at a cost
    proportional to the bright events instead of to every pixel above ``k_grow``.
    """
    foreground = z >= k_grow
    if relative_grow <= 0:  # the local maximum is ≥ z > 0 there: it fails nobody
        return foreground
    strong = relative_grow * z > k_grow
    box = padded_box(strong, (0,) * z.ndim)
    if box is None:
        return foreground
    groups, _ = ndimage.label(strong[box], structure=np.ones((3,) * z.ndim, bool))
    strong_z = np.where(strong, z, np.float32(0.0))
    size = [2 * h + 1 for h in half]
    for group in ndimage.find_objects(groups):
        near = tuple(slice(max(0, b.start + g.start - h), min(n, b.start + g.stop + h))
                     for b, g, h, n in zip(box, group, half, z.shape, strict=True))
        peak = ndimage.maximum_filter(strong_z[near], size=size, mode="nearest")
        foreground[near] &= z[near] >= relative_grow * peak
    return foreground


def _frames_px(ms: float, um: float, dt_ms: float, pixel_um: float) -> tuple[int, int]:
    """Half-sizes in whole frames and pixels covering ±``ms`` and ±``um``."""
    return int(math.ceil(ms / dt_ms)), int(math.ceil(um / pixel_um))
