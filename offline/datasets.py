"""Training and evaluation data: labelled recordings and random training windows.

Sources of labelled recordings (:class:`LabeledRecording`):

* the simulator, on the fly (:class:`SimulatedSource`), with disjoint seed ranges per split so
  that train / validation / test never share a recording;
* Dotti-convention folders (``NN_video.tif``, ``NN_class_label.tif``, ``NN_event_label.tif``);
* line-scan / movie folders written by the simulator (``acquisition.simulate.write_recording``).

Training windows are cut from them by :mod:`offline.training_windows`, after the raw-count
augmentation of :mod:`offline.augmentation`. Splits are by recording, never by window.
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
    stand in for :class:`SimulatedSource` in a
    :class:`~offline.training_windows.WindowStream`.
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
