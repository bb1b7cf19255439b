"""Random training windows from labelled recordings.

Windows (:class:`WindowSampler`) are cut with the engine's window geometry from recordings that
were augmented on the raw counts (:mod:`offline.augmentation`) and *then* run through the
engine's ΔF/F0 preprocessing, so that training sees exactly what inference sees;
:class:`WindowStream` batches them deterministically from a source of recordings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from acquisition.labels import IGNORE
from offline.separation import separation_weights

if TYPE_CHECKING:
    from offline.augmentation import Augmentation
    from offline.datasets import LabeledRecording, SimulatedSource


def preprocess_recording(
    counts: np.ndarray, blank: float | None, axes: str, pixel_um: float, dt_ms: float,
    model_config: Mapping[str, Any],
) -> np.ndarray:
    """Network input ``(T, ...)`` float32 for a whole recording, through the engine's streaming
    preprocessing (identical to streaming it) and the model's input normalization."""
    from engine.preprocess import network_input
    from engine.preprocess import preprocess_recording as engine_preprocess

    kwargs = dict(model_config.get("preprocess", {}))
    dff0 = engine_preprocess(np.asarray(counts), dt_ms, blank=blank, **kwargs)
    return network_input(dff0, dict(model_config.get("normalization", {})))


@dataclass
class WindowSampler:
    """Random windows ``(W_t, ...)`` from preprocessed recordings.

    Parameters
    ----------
    window_shape
        ``(W_t, X)`` or ``(W_t, Y, X)``; spatial sizes larger than the recording are padded.
    model_config
        The model's config.json dict (preprocessing/normalization settings).
    augmentation
        Augmentation of the raw counts (``None``: none).
    windows_per_recording
        Windows drawn from each augmented + preprocessed recording.
    event_fraction
        Probability that a window is centred on an event pixel (else anywhere).
    event_sampling
        How that pixel is chosen: ``"pixel"``, uniformly among all event pixels (large
        events such as waves dominate), or ``"class"``, first a class uniformly among the
        event classes present in the recording, then one of its pixels (rare, small events
        such as movie sparks get their share of windows).
    separation
        ``(w0, sigma_px)``: each window also carries per-pixel loss weights that teach where
        neighbouring events part (:func:`offline.separation.separation_weights`); ``None``:
        windows are ``(input, labels)`` pairs.
    """

    window_shape: tuple[int, ...]
    model_config: Mapping[str, Any]
    augmentation: Augmentation | None = None
    windows_per_recording: int = 8
    event_fraction: float = 0.7
    event_sampling: str = "pixel"
    separation: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.event_sampling not in ("pixel", "class"):
            raise ValueError(f"event_sampling must be 'pixel' or 'class', got {self.event_sampling!r}")

    def windows(
        self, rec: LabeledRecording, rng: np.random.Generator
    ) -> list[tuple[np.ndarray, ...]]:
        """``windows_per_recording`` (input float32, labels int64) pairs from ``rec``; with
        ``separation``, (input, labels, weights float32) triples."""
        if self.augmentation is not None:
            counts, blank = self.augmentation.apply(rec, rng)
        else:
            counts, blank = rec.data, rec.blank
        net_in = preprocess_recording(counts, blank, rec.axes, rec.pixel_um, rec.dt_ms,
                                      self.model_config)
        centres = self._centre_candidates(rec.class_mask)
        extra = []
        if self.separation is not None:
            extra = [separation_weights(rec.instance_mask, *self.separation)]
        out = []
        for _ in range(self.windows_per_recording):
            x, y, *w = self._crop(net_in, rec.class_mask, centres, rng, extra)
            if self.augmentation is not None:
                flip = self.augmentation.flips(x.ndim, rng)
                if flip:
                    x, y, w = np.flip(x, flip), np.flip(y, flip), [np.flip(a, flip) for a in w]
            out.append((np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int64),
                        *(np.ascontiguousarray(a, np.float32) for a in w)))
        return out

    def _centre_candidates(self, y: np.ndarray) -> list[np.ndarray]:
        """Flat indices of the event pixels that may centre a window: one array of all of
        them (``"pixel"``) or one per event class present (``"class"``)."""
        flat = y.ravel()
        if self.event_sampling == "pixel":
            groups = [np.flatnonzero((flat > 0) & (flat != IGNORE))]
        else:
            groups = [np.flatnonzero(flat == c) for c in np.unique(flat) if 0 < c != IGNORE]
        return [g for g in groups if g.size]

    def _crop(self, x: np.ndarray, y: np.ndarray, centres: list[np.ndarray],
              rng: np.random.Generator, extra: Sequence[np.ndarray] = ()):
        """Random crop of ``x``, ``y`` and each of ``extra`` (arrays shaped like ``y``, padded
        with 1); with probability ``event_fraction`` one containing an event pixel."""
        centre = None
        if rng.random() < self.event_fraction and centres:
            group = centres[int(rng.integers(len(centres)))] if len(centres) > 1 else centres[0]
            centre = np.unravel_index(int(group[rng.integers(group.size)]), y.shape)
        slices = []
        for axis, (size, want) in enumerate(zip(x.shape, self.window_shape, strict=True)):
            lo, hi = 0, max(0, size - want)
            if centre is not None:
                lo, hi = max(lo, centre[axis] - want + 1), min(hi, centre[axis])
                lo = min(lo, hi)
            start = int(rng.integers(lo, hi + 1))
            slices.append(slice(start, start + want))
        x, y = x[tuple(slices)], y[tuple(slices)]
        extra = [a[tuple(slices)] for a in extra]
        pad = [(0, want - s) for s, want in zip(x.shape, self.window_shape, strict=True)]
        if any(p[1] for p in pad):
            x = np.pad(x, pad, mode="reflect" if all(s > p[1] for s, p in zip(x.shape, pad, strict=True)) else "edge")
            y = np.pad(y, pad, constant_values=IGNORE)
            extra = [np.pad(a, pad, constant_values=1.0) for a in extra]
        return (x, y, *extra)


class WindowStream:
    """Deterministic stream of training batches from a :class:`SimulatedSource`.

    Each simulated recording is augmented, preprocessed once and cut into
    ``sampler.windows_per_recording`` windows; the windows of ``pool_recordings`` recordings
    are shuffled together so that a batch mixes recordings. Batch ``k`` is a pure function of
    ``(seed, k)``, so training resumed from a checkpoint sees the same batches.
    """

    def __init__(self, source: SimulatedSource, sampler: WindowSampler, batch_size: int,
                 seed: int, pool_recordings: int = 4) -> None:
        self.source = source
        self.sampler = sampler
        self.batch_size = batch_size
        self.seed = seed
        self.pool_recordings = pool_recordings
        pool_windows = pool_recordings * sampler.windows_per_recording
        self.batches_per_pool = max(1, pool_windows // batch_size)
        self._pool_index = -1
        self._pool: list[tuple[np.ndarray, ...]] = []

    def _load_pool(self, pool_index: int) -> None:
        rng = np.random.default_rng([self.seed, pool_index])
        pool = []
        first = pool_index * self.pool_recordings
        for i in range(first, first + self.pool_recordings):
            pool += self.sampler.windows(self.source.recording(i), rng)
        order = rng.permutation(len(pool))
        while len(order) < self.batches_per_pool * self.batch_size:
            order = np.concatenate([order, rng.permutation(len(pool))])
        self._pool = [pool[i] for i in order]
        self._pool_index = pool_index

    def batch(self, step: int) -> tuple[np.ndarray, ...]:
        """``(B, 1, W_t, ...)`` float32 inputs and ``(B, W_t, ...)`` int64 labels of ``step``
        (and ``(B, W_t, ...)`` float32 pixel weights where the sampler makes them)."""
        pool_index, within = divmod(step, self.batches_per_pool)
        if pool_index != self._pool_index:
            self._load_pool(pool_index)
        chunk = self._pool[within * self.batch_size:(within + 1) * self.batch_size]
        xs, ys, *ws = zip(*chunk, strict=True)
        return (np.stack(xs)[:, None], np.stack(ys), *(np.stack(w) for w in ws))
