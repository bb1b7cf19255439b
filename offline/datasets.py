"""Training and evaluation data: labelled recordings and random training windows.

Sources of labelled recordings (:class:`LabeledRecording`):

* the simulator, on the fly (:class:`SimulatedSource`), with disjoint seed ranges per split so
  that train / validation / test never share a recording;
* Dotti-convention folders (``NN_video.tif``, ``NN_class_label.tif``, ``NN_event_label.tif``);
* line-scan / movie folders written by the simulator (``acquisition.simulate.write_recording``).

Windows (:class:`WindowSampler`) are cut with the engine's window geometry from recordings that
were augmented on the raw counts and *then* run through the engine's ΔF/F0 preprocessing, so
that training sees exactly what inference sees. Splits are by recording, never by window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.labels import IGNORE
from acquisition.stream_kind import StreamKind

log = logging.getLogger(__name__)

#: seed offsets of the splits (recordings never overlap between splits)
SPLIT_SEED_OFFSETS = {"train": 0, "val": 10_000_000, "test": 20_000_000}
#: suffix of a ``randomize`` key that scales one of the event statistics' log-normals
SCALE = "_scale"


@dataclass
class LabeledRecording:
    """A recording with its ground truth (raw counts, Dotti class ids, instance ids)."""

    data: np.ndarray
    class_mask: np.ndarray
    instance_mask: np.ndarray
    pixel_um: float
    dt_ms: float
    axes: str
    blank: float | None = None
    events: list[dict] = field(default_factory=list)
    name: str = ""
    phenotype: str = ""
    cell: str = ""

    @property
    def stream_kind(self) -> StreamKind:
        """Line-scan or movie, from :attr:`axes`."""
        return StreamKind.from_axes(self.axes)

    @classmethod
    def from_simulation(cls, rec: Any, name: str = "") -> LabeledRecording:
        """From an ``acquisition.simulate.Recording``."""
        return cls(data=rec.data, class_mask=rec.class_mask, instance_mask=rec.instance_mask,
                   pixel_um=float(rec.pixel_um), dt_ms=float(rec.dt_ms), axes=rec.axes,
                   blank=rec.blank, events=list(rec.events), name=name,
                   phenotype=getattr(rec, "phenotype", ""), cell=str(getattr(rec, "cell", "")))


# --------------------------------------------------------------------------- simulated source


class LazyRecordings(Sequence):
    """The first ``n`` recordings of a source, each made when it is read and not kept: an
    evaluation then holds one recording at a time instead of all of them."""

    def __init__(self, make: Callable[[int], LabeledRecording], n: int) -> None:
        self._make, self._n = make, int(n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if not -self._n <= index < self._n:
            raise IndexError(index)
        return self._make(index % self._n)


@dataclass
class SimulatedSource:
    """Simulated recordings for one split.

    Parameters
    ----------
    kind
        ``"linescan"`` or ``"movie"`` (a model kind: :attr:`stream_kind`).
    split
        ``"train"``, ``"val"`` or ``"test"`` (selects a disjoint seed range).
    seed
        Base seed; recording ``i`` uses ``seed + SPLIT_SEED_OFFSETS[split] + i``.
    params
        Overrides of ``LinescanParams`` / ``MovieParams`` fields (e.g. ``duration_s``).
    randomize
        Ranges to draw per recording: ``{"pixel_um": [lo, hi], "dt_ms": [lo, hi],
        "resting_photons": [lo, hi], "phenotype": ["wt", "cpvt"]}``; keys of the
        simulator's ``EventStats`` (e.g. ``"wave_rate_per_cell_s"``) override the phenotype's
        event statistics, so rare event kinds can be made frequent enough to learn;
        ``"<distribution>_scale"`` (e.g. ``"spark_t50_ms_scale": [0.8, 2.0]``) multiplies the
        median and clip range of one of its log-normal distributions; keys of
        ``OpticsParams`` and ``CellParams`` (e.g. ``"bleach_tau_s"``,
        ``"nucleus_brightness"``) override the detector and the cell.
    """

    kind: str
    split: str = "train"
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    randomize: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        StreamKind.from_model_kind(self.kind)  # an unknown kind fails here, not when read

    @property
    def stream_kind(self) -> StreamKind:
        return StreamKind.from_model_kind(self.kind)

    def recording(self, index: int) -> LabeledRecording:
        """The ``index``-th recording of this split (deterministic)."""
        from acquisition import simulate

        seed = self.seed + SPLIT_SEED_OFFSETS[self.split] + index
        rng = np.random.default_rng([seed, 7])
        kwargs = dict(self.params)
        kwargs.update(self._draw(rng))
        params = self._make_params(simulate, kwargs)
        rec = (simulate.simulate_linescan(params, seed) if self.stream_kind.is_linescan
               else simulate.simulate_movie(params, seed))
        return LabeledRecording.from_simulation(rec, name=f"{self.split}-{self.kind}-{seed}")

    def __iter__(self) -> Iterator[LabeledRecording]:
        index = 0
        while True:
            yield self.recording(index)
            index += 1

    def take(self, n: int) -> list[LabeledRecording]:
        """The first ``n`` recordings of the split."""
        return [self.recording(i) for i in range(n)]

    def lazy(self, n: int) -> LazyRecordings:
        """The first ``n`` recordings of the split, each made when read."""
        return LazyRecordings(self.recording, n)

    def _draw(self, rng: np.random.Generator) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, spec in self.randomize.items():
            if key == "phenotype":
                out[key] = str(rng.choice(list(spec)))
            else:
                lo, hi = float(spec[0]), float(spec[1])
                out[key] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        return out

    def _make_params(self, simulate: Any, kwargs: dict[str, Any]) -> Any:
        cls = simulate.LinescanParams if self.stream_kind.is_linescan else simulate.MovieParams
        params = cls(**{k: v for k, v in kwargs.items() if k in cls.__dataclass_fields__})
        base = params.stats or simulate.PHENOTYPES[params.phenotype]
        stats_keys = {k: v for k, v in kwargs.items() if k in simulate.EventStats.__dataclass_fields__}
        stats_keys.update({k[:-len(SCALE)]: getattr(base, k[:-len(SCALE)]).scaled(float(v))
                           for k, v in kwargs.items()
                           if k.endswith(SCALE) and isinstance(getattr(base, k[:-len(SCALE)], None),
                                                               simulate.LogNormal)})
        if stats_keys:
            params = replace(params, stats=replace(base, **stats_keys))
        for part in ("optics", "cell"):
            group = getattr(params, part)
            keys = {k: v for k, v in kwargs.items() if k in type(group).__dataclass_fields__}
            if keys:
                params = replace(params, **{part: replace(group, **keys)})
        return params


# --------------------------------------------------------------------------- folders


def load_dotti_folder(folder: str | Path, pixel_um: float = 0.2, dt_ms: float = 6.8) -> list[LabeledRecording]:
    """Recordings of a Dotti-convention folder: ``NN_video.tif``, ``NN_class_label.tif``,
    optional ``NN_event_label.tif`` (instances; connected components of the classes when
    absent). Movies ``(T, Y, X)`` or line-scans ``(T, X)``. Calibration defaults are Dotti's."""
    import tifffile

    folder = Path(folder)
    out = []
    for video in sorted(folder.glob("*_video.tif")):
        stem = video.name[: -len("_video.tif")]
        class_path = folder / f"{stem}_class_label.tif"
        if not class_path.exists():
            raise FileNotFoundError(f"{video.name} has no {class_path.name} beside it")
        class_mask = tifffile.imread(class_path).astype(np.uint8)
        event_path = folder / f"{stem}_event_label.tif"
        instances = (tifffile.imread(event_path).astype(np.int32) if event_path.exists()
                     else _instances_from_classes(class_mask))
        data = tifffile.imread(video)
        if data.ndim not in (2, 3):
            raise ValueError(f"{video.name}: expected (T, X) or (T, Y, X), got shape {data.shape}")
        for name, labels in ((class_path.name, class_mask), (event_path.name, instances)):
            if labels.shape != data.shape:
                raise ValueError(f"{name} has shape {labels.shape}, {video.name} {data.shape}")
        if class_mask.max() > IGNORE:
            raise ValueError(f"{class_path.name}: class ids must be 0-4 (Dotti), found {class_mask.max()}")
        out.append(LabeledRecording(data=data, class_mask=class_mask, instance_mask=instances,
                                    pixel_um=pixel_um, dt_ms=dt_ms,
                                    axes=StreamKind.from_item_shape(data.shape[1:]).axes,
                                    name=stem))
    if not out:
        raise FileNotFoundError(f"no *_video.tif in {folder} (expected Dotti et al.'s NN_video.tif, "
                                "NN_class_label.tif, NN_event_label.tif)")
    return out


def _instances_from_classes(class_mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    fg = (class_mask > 0) & (class_mask != IGNORE)
    labels, _ = ndimage.label(fg)
    return labels.astype(np.int32)


def load_recordings(path: str | Path, pixel_um: float = 0.2, dt_ms: float = 6.8) -> list[LabeledRecording]:
    """Labelled recordings of a Dotti-convention folder (see :func:`load_dotti_folder`)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder of labelled recordings")
    return load_dotti_folder(path, pixel_um=pixel_um, dt_ms=dt_ms)


@dataclass
class FolderSource:
    """A lab's labelled recordings as a training source, split **by recording** (never by
    window): a seeded permutation puts ``val_fraction`` of the recordings (at least one when
    there are two or more) in ``"val"``, the rest in ``"train"``. ``recording(i)`` of the
    train split walks the training recordings in a new seeded order every epoch, so it can
    stand in for :class:`SimulatedSource` in a :class:`WindowStream`.
    """

    path: str | Path
    split: str = "train"
    seed: int = 0
    val_fraction: float = 0.2
    pixel_um: float = 0.2
    dt_ms: float = 6.8

    def __post_init__(self) -> None:
        if self.split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {self.split!r}")
        recordings = load_recordings(self.path, self.pixel_um, self.dt_ms)
        order = np.random.default_rng([self.seed, 11]).permutation(len(recordings))
        n_val = 0 if len(recordings) < 2 else max(1, int(round(self.val_fraction * len(recordings))))
        chosen = order[:n_val] if self.split == "val" else order[n_val:]
        self.recordings = [recordings[i] for i in sorted(chosen)]
        if not self.recordings:
            raise ValueError(f"{self.path}: no recordings left for the {self.split} split")

    def recording(self, index: int) -> LabeledRecording:
        epoch, within = divmod(index, len(self.recordings))
        order = np.random.default_rng([self.seed, 13, epoch]).permutation(len(self.recordings))
        return self.recordings[int(order[within])]

    def take(self, n: int) -> list[LabeledRecording]:
        return self.recordings[:n]


# --------------------------------------------------------------------------- augmentation


@dataclass
class Augmentation:
    """Augmentation of the raw counts (applied before the engine's ΔF/F0 preprocessing).

    ``gain`` and ``offset_counts`` are ranges; ``extra_noise_sd`` is a range of the SD of added
    Gaussian noise as a fraction of the cell's median signal above the blank.

    Acquisition artefacts, each applied to a recording with its probability ``p_*`` (0, the
    default, leaves the old behaviour and random stream unchanged); ranges are drawn uniformly
    per recording, the effects act on the signal above the blank (counts − blank):

    * ``flicker_sd``: per-line multiplicative laser flicker, ``1 + N(0, sd)`` per line/frame;
    * ``column_gain_sd`` / ``column_offset_sd_counts``: fixed-pattern gain ``1 + N(0, sd)``
      (clipped to 0.5–1.5) and offset ``N(0, sd)`` counts per column;
    * ``band_amplitude`` / ``band_scale_um``: smooth bright and dark bands along x, a factor
      ``1 + a·f(x)`` with ``f`` a smoothed random field of correlation length ``band_scale_um``
      scaled to a maximum of 1;
    * ``dark_fraction``: a block of that fraction of the columns, holding no event (labels
      unchanged), turned into dark extracellular pixels (``dark_level`` of the signal plus
      noise as large as that of the darkest columns);
    * ``drift_amplitude``: slow multiplicative drift ``1 + a·g(t)`` (``g`` smooth over about a
      quarter of the recording, maximum 1);
    * ``bleach_fraction``: extra exponential bleaching losing that fraction of the signal by the
      end of the recording.
    """

    gain: tuple[float, float] = (0.7, 1.4)
    offset_counts: tuple[float, float] = (-20.0, 20.0)
    extra_noise_sd: tuple[float, float] = (0.0, 0.3)
    flip_x: bool = True
    flip_y: bool = True
    p_flicker: float = 0.0
    flicker_sd: tuple[float, float] = (0.01, 0.05)
    p_column: float = 0.0
    column_gain_sd: tuple[float, float] = (0.05, 0.2)
    column_offset_sd_counts: tuple[float, float] = (0.0, 5.0)
    p_bands: float = 0.0
    band_amplitude: tuple[float, float] = (0.1, 0.3)
    band_scale_um: tuple[float, float] = (1.5, 10.0)
    p_dark: float = 0.0
    dark_fraction: tuple[float, float] = (0.05, 0.25)
    dark_level: tuple[float, float] = (0.0, 0.1)
    p_drift: float = 0.0
    drift_amplitude: tuple[float, float] = (0.0, 0.05)
    p_bleach: float = 0.0
    bleach_fraction: tuple[float, float] = (0.0, 0.5)

    def apply(self, rec: LabeledRecording, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Augmented float32 counts and the matching blank."""
        blank = float(rec.blank) if rec.blank is not None else 0.0
        signal = rec.data.astype(np.float32) - blank
        signal *= rng.uniform(*self.gain)
        column_offset = self._artefacts(signal, rec, rng)
        level = float(np.median(signal[signal > np.percentile(signal, 50)])) if signal.size else 0.0
        noise_sd = rng.uniform(*self.extra_noise_sd) * max(level, 1.0)
        if noise_sd > 0:
            signal += rng.normal(0.0, noise_sd, size=signal.shape).astype(np.float32)
        if column_offset is not None:
            signal += column_offset
        new_blank = blank + rng.uniform(*self.offset_counts)
        return np.clip(signal + new_blank, 0, 65535).astype(np.float32), new_blank

    def _artefacts(self, signal: np.ndarray, rec: LabeledRecording,
                   rng: np.random.Generator) -> np.ndarray | None:
        """Apply the enabled acquisition artefacts to ``signal`` (``(T, ...)``, in place);
        returns the per-column offsets to add after the extra noise (``None``: none)."""
        def happens(p: float) -> bool:  # no random draw when disabled
            return p > 0 and rng.random() < p

        n_t, n_x = signal.shape[0], signal.shape[-1]
        along_t = (-1,) + (1,) * (signal.ndim - 1)
        if happens(self.p_bleach):
            remaining = 1.0 - rng.uniform(*self.bleach_fraction)
            signal *= (remaining ** (np.arange(n_t) / max(n_t - 1, 1))).astype(np.float32).reshape(along_t)
        if happens(self.p_drift):
            drift = _smooth_unit(n_t, n_t / 4.0, rng)
            signal *= (1.0 + rng.uniform(*self.drift_amplitude) * drift).reshape(along_t)
        if happens(self.p_flicker):
            flicker = 1.0 + rng.normal(0.0, rng.uniform(*self.flicker_sd), n_t)
            signal *= np.clip(flicker, 0.5, 1.5).astype(np.float32).reshape(along_t)
        if happens(self.p_bands):
            sigma_px = rng.uniform(*self.band_scale_um) / max(rec.pixel_um, 1e-6)
            bands = 1.0 + rng.uniform(*self.band_amplitude) * _smooth_unit(n_x, sigma_px, rng)
            signal *= np.clip(bands, 0.05, None)
        offset = None
        if happens(self.p_column):
            gain = np.clip(1.0 + rng.normal(0.0, rng.uniform(*self.column_gain_sd), n_x), 0.5, 1.5)
            signal *= gain.astype(np.float32)
            offset = rng.normal(0.0, rng.uniform(*self.column_offset_sd_counts), n_x).astype(np.float32)
        if happens(self.p_dark):
            self._darken(signal, rec.class_mask, rng)
        return offset

    def _darken(self, signal: np.ndarray, class_mask: np.ndarray, rng: np.random.Generator) -> None:
        """Turn a block of event-free columns (at an end of the line when one is free, else
        anywhere) into dark extracellular pixels."""
        n_x = signal.shape[-1]
        width = int(round(rng.uniform(*self.dark_fraction) * n_x))
        busy = ((class_mask > 0) & (class_mask != IGNORE)).reshape(-1, n_x).any(axis=0)
        if not 0 < width < n_x:
            return
        events_in = np.convolve(busy.astype(np.int64), np.ones(width, np.int64), mode="valid")
        starts = np.flatnonzero(events_in == 0)
        at_end = starts[(starts == 0) | (starts == n_x - width)]
        starts = at_end if at_end.size else starts
        if starts.size == 0:
            return
        start = int(starts[rng.integers(starts.size)])
        block = (Ellipsis, slice(start, start + width))
        columns = signal.reshape(-1, n_x)
        dark_cols = np.argsort(np.median(columns, axis=0))[: max(1, n_x // 20)]
        noise_sd = float(np.median(np.std(columns[:, dark_cols], axis=0)))
        dark = signal[block] * np.float32(rng.uniform(*self.dark_level))
        signal[block] = dark + rng.normal(0.0, noise_sd, dark.shape).astype(np.float32)

    def flips(self, ndim: int, rng: np.random.Generator) -> tuple[int, ...]:
        """Spatial axes (of a ``(T, ...)`` array) to flip for one window."""
        axes = []
        if self.flip_x and rng.random() < 0.5:
            axes.append(ndim - 1)
        if self.flip_y and ndim == 3 and rng.random() < 0.5:
            axes.append(1)
        return tuple(axes)


def _smooth_unit(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A smoothed random field of ``n`` samples (correlation ``sigma`` samples), maximum
    absolute value 1, float32."""
    from scipy import ndimage

    field = ndimage.gaussian_filter1d(rng.standard_normal(n), max(sigma, 0.5), mode="reflect")
    return (field / max(float(np.abs(field).max()), 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- windows


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
    """

    window_shape: tuple[int, ...]
    model_config: Mapping[str, Any]
    augmentation: Augmentation | None = None
    windows_per_recording: int = 8
    event_fraction: float = 0.7
    event_sampling: str = "pixel"

    def __post_init__(self) -> None:
        if self.event_sampling not in ("pixel", "class"):
            raise ValueError(f"event_sampling must be 'pixel' or 'class', got {self.event_sampling!r}")

    def windows(
        self, rec: LabeledRecording, rng: np.random.Generator
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``windows_per_recording`` (input float32, labels int64) pairs from ``rec``."""
        if self.augmentation is not None:
            counts, blank = self.augmentation.apply(rec, rng)
        else:
            counts, blank = rec.data, rec.blank
        net_in = preprocess_recording(counts, blank, rec.axes, rec.pixel_um, rec.dt_ms,
                                      self.model_config)
        centres = self._centre_candidates(rec.class_mask)
        out = []
        for _ in range(self.windows_per_recording):
            x, y = self._crop(net_in, rec.class_mask, centres, rng)
            if self.augmentation is not None:
                flip = self.augmentation.flips(x.ndim, rng)
                if flip:
                    x, y = np.flip(x, flip), np.flip(y, flip)
            out.append((np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int64)))
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
              rng: np.random.Generator):
        """Random crop; with probability ``event_fraction`` one containing an event pixel."""
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
        pad = [(0, want - s) for s, want in zip(x.shape, self.window_shape, strict=True)]
        if any(p[1] for p in pad):
            x = np.pad(x, pad, mode="reflect" if all(s > p[1] for s, p in zip(x.shape, pad, strict=True)) else "edge")
            y = np.pad(y, pad, constant_values=IGNORE)
        return x, y


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
        self._pool: list[tuple[np.ndarray, np.ndarray]] = []

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

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(B, 1, W_t, ...)`` float32 inputs and ``(B, W_t, ...)`` int64 labels of ``step``."""
        pool_index, within = divmod(step, self.batches_per_pool)
        if pool_index != self._pool_index:
            self._load_pool(pool_index)
        chunk = self._pool[within * self.batch_size:(within + 1) * self.batch_size]
        xs, ys = zip(*chunk, strict=True)
        return np.stack(xs)[:, None], np.stack(ys)
