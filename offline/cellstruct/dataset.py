"""Candidates of simulated fields, matched to ground truth, with features and crops.

Each field is segmented by the engine's own segmenter (so the curator learns the candidates
it will see: debris, dead cells, out-of-focus cells, fibroblasts, fragments and merged
neighbours); a candidate is a true cell when its IoU with a simulated cardiomyocyte is
≥ 0.5 and then carries that cell's labels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from acquisition.simulate.structure import (
    RenderStyle,
    StructureFieldParams,
    simulate_structure_field,
)
from engine.cells.analyze import measure_candidates
from engine.cells.crops import roi_crops
from engine.cells.features import CLASSICAL_FEATURES, FEATURE_NAMES, field_levels, roi_features
from engine.cells.model import CellsModel
from engine.cells.schema import CELL_SOURCES
from engine.cells.segment import segment_candidates

log = logging.getLogger(__name__)

#: first seed of each split; fields of different splits never share a seed. ``select`` is
#: the selection split for rendering-robust candidates (docs/CELLS.md, "Selection split"):
#: the validation generator's content, each field rendered by :meth:`RenderStyle.randomized`
#: drawn from its own seed (neither the default rendering nor the variant's)
SPLIT_SEEDS = {"train": 0, "val": 1_000_000, "test": 2_000_000, "variant": 3_000_000,
               "select": 4_000_000}
MATCH_IOU = 0.5
TARGETS = ("is_cell", "iou", "structure_score", "organisation", "sarcomerisation",
           "directionality", "source_index", "sarcomere_length_true_um", "field", "n_true_cells")


#: rendering of a split's fields: the default generator, or (training fields only, with
#: ``castream train-cells --randomize-rendering``) :meth:`RenderStyle.randomized`; the
#: ``variant`` and ``select`` splits have their own rendering whatever is asked
RENDERINGS = ("default", "randomized")


def field_params(rng: np.random.Generator, split: str, rendering: str = "default",
                 style_rng: np.random.Generator | None = None) -> StructureFieldParams:
    """Randomized acquisition and content of one field (the variant renders differently;
    ``rendering="randomized"`` draws a training field's rendering from ``style_rng``, and
    every ``select`` field's rendering is drawn from it the same way)."""
    pixel_um = float(rng.uniform(0.1, 0.2))
    side_px = int(rng.uniform(110.0, 150.0) / pixel_um)
    if rendering not in RENDERINGS:
        raise ValueError(f"rendering must be one of {RENDERINGS}, not {rendering!r}")
    if rendering == "randomized" and split != "train":
        raise ValueError("randomized rendering is for training fields only")
    if split == "variant":
        style = RenderStyle.variant()
    elif rendering == "randomized" or split == "select":
        style = RenderStyle.randomized(style_rng)
    else:
        style = RenderStyle()
    return StructureFieldParams(
        shape_px=(side_px, side_px), pixel_um=pixel_um,
        n_cardiomyocytes=int(rng.integers(2, 7)), n_debris=int(rng.integers(1, 6)),
        n_fibroblasts=int(rng.integers(0, 3)), n_out_of_focus=int(rng.integers(0, 3)),
        n_dead=int(rng.integers(0, 3)), z_slices=5 if rng.random() < 0.2 else 0,
        touching_probability=0.35, style=style)


def simulate(split: str, index: int, rendering: str = "default", z_slices: int | None = None):
    """The ``index``-th field of ``split`` (deterministic). With ``rendering="randomized"``
    the same field (layout, cells, patterns drawn from the same streams) is rendered with
    :meth:`RenderStyle.randomized` choices drawn from their own stream (``[seed, 77]``);
    a ``select`` field always is. ``z_slices`` renders the same field with that many planes
    (0: 2-D) instead of the drawn number."""
    seed = SPLIT_SEEDS[split] + index
    params = field_params(np.random.default_rng([seed, 99]), split, rendering,
                          np.random.default_rng([seed, 77]))
    if z_slices is not None:
        params = replace(params, z_slices=z_slices)
    return simulate_structure_field(params, seed=seed)


@dataclass
class Candidates:
    """All candidates of a set of fields: features, crops and targets (arrays by name)."""

    features: np.ndarray          # (n, len(names)), NaN where not measured
    crops: np.ndarray             # (n, 2, 64, 64) float16
    targets: dict[str, np.ndarray]
    n_true_cells: int             # cardiomyocytes in the fields (detection denominator)
    names: tuple[str, ...] = CLASSICAL_FEATURES
    #: the segmenter's keyword arguments these candidates were cut with (None: its defaults)
    segmentation: dict | None = None

    def rows(self) -> list[dict]:
        return [dict(zip(self.names, map(float, f), strict=True)) for f in self.features]

    def __len__(self) -> int:
        return len(self.features)


@lru_cache(maxsize=2)
def _pattern_model(path: str) -> CellsModel:
    return CellsModel.load(path)


def field_candidates(split: str, index: int, pattern_model: str | None = None,
                     rendering: str = "default", segmentation: dict | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, dict, int]:
    """Features, crops, targets and the number of true cells of one field; with a model
    directory holding a pattern net, the features include the pattern fractions;
    ``segmentation``: keyword arguments of the segmenter (a model's ``segmentation``)."""
    field = simulate(split, index, rendering)
    plane = field.image.max(axis=0) if field.image.ndim == 3 else field.image
    plane = plane.astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um, **(segmentation or {}))
    if pattern_model:
        rows, crops = measure_candidates(plane, labels, field.pixel_um,
                                         _pattern_model(pattern_model))
    else:
        rows = roi_features(plane, labels, field.pixel_um)
        background, foreground = field_levels(plane, labels)
        crops = roi_crops(plane, labels, rows, field.pixel_um, background,
                          foreground - background)
    names = FEATURE_NAMES if pattern_model else CLASSICAL_FEATURES
    targets = candidate_targets(rows, labels, field)
    n_true = sum(o["is_cell"] for o in field.objects)
    targets["field"], targets["n_true_cells"] = [index] * len(rows), [n_true] * len(rows)
    return feature_matrix(rows, names), crops.astype(np.float16), targets, n_true


def candidate_targets(rows: list[dict], labels: np.ndarray, field) -> dict[str, list]:
    """:data:`TARGETS` of each candidate ROI (``rows``' ``cell_id`` in ``labels``), matched to
    the field's ground truth (NaN where a target does not apply)."""
    targets = {name: [] for name in TARGETS}
    for row in rows:
        match = match_truth(labels == row["cell_id"], field)
        for name in TARGETS:
            targets[name].append(match.get(name, np.nan))
    return targets


def feature_matrix(rows: list[dict], names: tuple[str, ...]) -> np.ndarray:
    """``(len(rows), len(names))`` float32 features of the candidate rows."""
    return np.array([[r[n] for n in names] for r in rows], np.float32).reshape(
        len(rows), len(names))


def match_truth(mask: np.ndarray, field) -> dict:
    """The ground truth of the field object that overlaps the candidate ``mask`` most:
    ``is_cell`` (a true cell matched at IoU ≥ :data:`MATCH_IOU`), ``iou`` and, for a matched
    cell, its targets and ``truth`` (the object's own record)."""
    ids, counts = np.unique(field.labels[mask], return_counts=True)
    keep = ids > 0
    if not keep.any():
        return {"is_cell": 0, "iou": 0.0}
    best = int(ids[keep][np.argmax(counts[keep])])
    inter = int(counts[keep].max())
    iou = inter / (mask.sum() + np.count_nonzero(field.labels == best) - inter)
    truth = field.objects[best - 1]
    out = {"is_cell": int(truth["is_cell"] and iou >= MATCH_IOU), "iou": float(iou)}
    if out["is_cell"]:
        out.update(structure_score=truth["structure_score"], organisation=truth["organisation"],
                   sarcomerisation=truth["sarcomerisation"],
                   directionality=truth["directionality"],
                   source_index=CELL_SOURCES.index(truth["cell_source"]),
                   sarcomere_length_true_um=truth["sarcomere_length_um"], truth=truth)
    return out


def build_candidates(split: str, n_fields: int, workers: int = 2,
                     cache_dir: str | Path | None = None, pattern_model: str | None = None,
                     cache_tag: str = "", rendering: str = "default",
                     segmentation: dict | None = None) -> Candidates:
    """Candidates of the first ``n_fields`` fields of ``split`` (cached as .npz if asked;
    ``cache_tag`` names what the features depend on, e.g. the pattern net's weights;
    ``rendering`` as in :func:`simulate`, named in the cache file when not the default;
    ``segmentation`` as in :func:`field_candidates`, named in the cache file when given)."""
    rendered = "" if rendering == "default" else f"-{rendering}"
    segmented = segmentation_tag(segmentation)
    cache = (Path(cache_dir) / f"{split}{rendered}-{n_fields}{cache_tag}{segmented}.npz"
             if cache_dir else None)
    if cache is not None and cache.is_file():
        return replace(_load(cache), segmentation=segmentation)
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
        parts = list(tqdm(pool.map(field_candidates, [split] * n_fields, range(n_fields),
                                   [pattern_model] * n_fields, [rendering] * n_fields,
                                   [segmentation] * n_fields),
                          total=n_fields, desc=f"{split} fields", mininterval=30.0,
                          file=sys.stderr))
    names = FEATURE_NAMES if pattern_model else CLASSICAL_FEATURES
    features = np.concatenate([p[0] for p in parts])
    crops = np.concatenate([p[1] for p in parts])
    targets = {n: np.concatenate([np.asarray(p[2][n], np.float64) for p in parts])
               for n in TARGETS}
    result = Candidates(features, crops, targets, int(sum(p[3] for p in parts)), names,
                        segmentation)
    log.info("%s: %d fields, %d candidates, %d true cells matched of %d", split, n_fields,
             len(result), int(targets["is_cell"].sum()), result.n_true_cells)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, features=features, crops=crops,
                            n_true_cells=result.n_true_cells, names=np.array(names),
                            **{f"t_{k}": v for k, v in targets.items()})
    return result


def segmentation_tag(segmentation: dict | None) -> str:
    """Cache-name part for non-default segmenter settings ("" for none)."""
    if not segmentation:
        return ""
    text = json.dumps(segmentation, sort_keys=True)
    return "-s" + hashlib.sha1(text.encode()).hexdigest()[:8]


def _load(path: Path) -> Candidates:
    data = np.load(path)
    targets = {k[2:]: data[k] for k in data.files if k.startswith("t_")}
    names = tuple(str(n) for n in data["names"]) if "names" in data.files \
        else CLASSICAL_FEATURES
    return Candidates(data["features"], data["crops"], targets, int(data["n_true_cells"]),
                      names)


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, *iterables):
        return map(fn, *iterables)
