"""Structure image → candidate ROIs → curation → features, score and classes → cell rows.

:func:`analyze_structure` is the one entry point (``castream cells``, later ``serve``): it
takes a 2-D field ``(Y, X)`` or a z-stack ``(Z, Y, X)`` (analysed on its maximum
projection, as AMES's 2-D models; the AMES labels of a z-stack's accepted cells come from
the model directory's 3-D head when it has one, :func:`stack_ames_labels`), segments
candidates unless ``labels`` are given, and returns one row per candidate with
:data:`~engine.cells.schema.CELL_COLUMNS` (structure fields empty for rejected ROIs) plus
the features it used.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .crops import roi_crops
from .features import field_levels, roi_features
from .model import CellsModel
from .patches import cell_patches, with_extra_channels
from .patterns import normalized, oriented_measures, pattern_fractions
from .schema import CELLS_SCHEMA_VERSION, STRUCTURE_COLUMNS
from .segment import segment_candidates
from .stack_head import stack_head_of, stack_labels

log = logging.getLogger(__name__)

MIN_SIDE_PX = 32
#: curation confidence is shrunk towards 0.5 by this factor outside the trained calibration
OUT_OF_RANGE_TRUST = 0.5


@dataclass
class CellsResult:
    rows: list[dict]
    labels: np.ndarray
    summary: dict = field(default_factory=dict)


def squeezed_image(image: np.ndarray) -> np.ndarray:
    """The image without axes of length 1 beyond its last two (a 2-D field or a z-stack)."""
    image = np.asarray(image)
    return image.squeeze() if image.ndim > 2 else image


def structure_plane(image: np.ndarray) -> np.ndarray:
    """The 2-D plane analysed: the image itself or the z-stack's maximum projection.

    Raises ``ValueError`` (one line, specific) for anything else.
    """
    image = np.asarray(image)
    squeezed = squeezed_image(image)
    if squeezed.ndim not in (2, 3):
        raise ValueError(f"a structure image must be 2-D (Y, X) or a z-stack (Z, Y, X); "
                         f"got shape {image.shape}")
    if min(squeezed.shape[-2:]) < MIN_SIDE_PX:
        raise ValueError(f"image of shape {image.shape} is too small: Y and X need at least "
                         f"{MIN_SIDE_PX} px")
    if not np.issubdtype(squeezed.dtype, np.number) or np.iscomplexobj(squeezed):
        raise ValueError(f"image dtype {squeezed.dtype} is not a real number type")
    plane = squeezed.max(axis=0) if squeezed.ndim == 3 else squeezed
    bad = int(np.count_nonzero(~np.isfinite(plane)))
    if bad:
        raise ValueError(f"image has {bad} non-finite (NaN/inf) pixels")
    return plane.astype(np.float32)


def check_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Validate user ROIs: integer ``(Y, X)`` of the image's size, ids ≥ 0."""
    labels = np.asarray(labels)
    if labels.ndim != 2 and labels.squeeze().ndim == 2:
        labels = labels.squeeze()
    if labels.shape != tuple(shape):
        raise ValueError(f"labels shape {labels.shape} does not match the image's (Y, X) "
                         f"shape {tuple(shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"labels must be integer ids, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError("labels must be ≥ 0 (0 = background)")
    return labels.astype(np.int32)


def analyze_structure(image: np.ndarray, pixel_um: float, model: CellsModel,
                      labels: np.ndarray | None = None) -> CellsResult:
    """Candidates (or the given ``labels``) curated and scored; see the module docstring."""
    if not (pixel_um and np.isfinite(pixel_um) and pixel_um > 0):
        raise ValueError(f"pixel size must be a positive number of µm, got {pixel_um!r}")
    started = time.perf_counter()
    plane = structure_plane(image)
    given = labels is not None
    labels = check_labels(labels, plane.shape) if given else segment_candidates(
        plane, pixel_um, **model.config.segmentation)
    rows, crops = measure_candidates(plane, labels, pixel_um, model)
    trust, notes = calibration_trust(pixel_um, model)
    proba = 0.5 + (model.curate(crops, rows) - 0.5) * trust
    _fill_rows(rows, proba, model, structure_patches(plane, labels, rows, pixel_um, model))
    ames_heads = stack_ames_labels(image, plane, labels, rows, pixel_um, model, notes)
    summary = _summary(rows, labels, pixel_um, model, given, notes, trust,
                       time.perf_counter() - started)
    summary["ames_heads"] = ames_heads
    return CellsResult(rows, labels, summary)


def stack_ames_labels(image: np.ndarray, plane: np.ndarray, labels: np.ndarray,
                      rows: list[dict], pixel_um: float, model: CellsModel,
                      notes: list[str]) -> str:
    """Accepted cells' AMES labels (sarcomerisation, directionality, source) from the model
    directory's optional 3-D head when ``image`` is a z-stack of the planes it was trained
    on (:mod:`.stack_head`); "3-D" then, else "2-D" (the labels ``_fill_rows`` gave, from
    the maximum projection). A stack of another depth adds a note to ``notes``."""
    stack = squeezed_image(image)
    head = stack_head_of(model.path) if stack.ndim == 3 else None
    if head is None:
        return "2-D"
    if not head.fits(stack):
        notes.append(f"z-stack of {stack.shape[0]} planes: the 3-D head was trained on "
                     f"{head.config['z_slices']}; AMES labels from the maximum projection")
        return "2-D"
    accepted = [row for row in rows if row["is_cell"]]
    answers = stack_labels(stack.astype(np.float32), labels, accepted, pixel_um, head,
                           field_levels(plane, labels), model.config.classes)
    for row, answer in zip(accepted, answers, strict=True):
        row.update(answer)
    return "3-D"


def measure_candidates(plane: np.ndarray, labels: np.ndarray, pixel_um: float,
                       model: CellsModel) -> tuple[list[dict], np.ndarray]:
    """Feature rows (incl. pattern fractions when the model has a pattern net) and the
    curator's crops of every ROI — the same for the engine and for training."""
    background, foreground = field_levels(plane, labels)
    rows = measure_rows(plane, labels, pixel_um, model, (background, foreground))
    cfg = model.config.curator
    crops = roi_crops(plane, labels, rows, pixel_um, background, foreground - background,
                      cfg["crop_px"], cfg["crop_scale"], cfg["min_side_um"])
    return rows, crops


def measure_rows(plane: np.ndarray, labels: np.ndarray, pixel_um: float, model: CellsModel,
                 levels: tuple[float, float]) -> list[dict]:
    """:func:`measure_candidates`'s feature rows alone, normalized by ``levels``."""
    background, foreground = levels
    rows = roi_features(plane, labels, pixel_um, levels=levels)
    if model.config.patterns is not None and rows:
        classes = model.pattern_classes(normalized(plane, background, foreground - background))
        fractions = pattern_fractions(classes, labels, [r["cell_id"] for r in rows])
        for row in rows:
            row.update(fractions[row["cell_id"]])
            row.update(oriented_measures(plane, labels, classes, row, pixel_um))
    return rows


def structure_patches(plane: np.ndarray, labels: np.ndarray, rows: list[dict], pixel_um: float,
                      model: CellsModel, levels: tuple[float, float] | None = None,
                      ) -> np.ndarray | None:
    """The fixed-µm patches of every ROI that a "crop_cnn" model scores (None for an MLP
    model or no ROI); ``levels`` as for :func:`measure_candidates`."""
    if model.structure_kind != "crop_cnn" or not rows:
        return None
    background, foreground = levels or field_levels(plane, labels)
    geometry = model.config.structure["patches"]
    patches = cell_patches(plane, labels, rows, pixel_um, background, foreground - background,
                           int(geometry["patch_px"]), float(geometry["patch_pixel_um"]),
                           int(geometry["n_patches"]))
    return with_extra_channels(patches, geometry.get("extra", []),
                               float(geometry["patch_pixel_um"]))


def calibration_trust(pixel_um: float, model: CellsModel) -> tuple[float, list[str]]:
    low, high = model.config.calibration["trained_range"]["pixel_um"]
    if low <= pixel_um <= high:
        return 1.0, []
    note = (f"pixel size {pixel_um:g} µm is outside the model's trained range "
            f"{low:g}–{high:g} µm: curation confidence shrunk towards 0.5")
    log.warning("%s", note)
    return OUT_OF_RANGE_TRUST, [note]


def _fill_rows(rows: list[dict], proba: np.ndarray, model: CellsModel,
               patches: np.ndarray | None) -> None:
    threshold = float(model.thresholds["is_cell"])
    scored = model.score(rows, patches) if rows else {}
    classes = model.config.classes
    for i, row in enumerate(rows):
        row["is_cell_proba"] = float(proba[i])
        row["is_cell"] = int(proba[i] >= threshold)
        if not row["is_cell"]:
            row.update(dict.fromkeys(STRUCTURE_COLUMNS, np.nan))
            continue
        row["structure_score"] = float(np.clip(scored["structure_score"][i], 1, 5))
        for name in ("sarcomerisation", "directionality", "cell_source"):
            row[name] = classes[name][int(np.argmax(scored[name][i]))]


def _summary(rows, labels, pixel_um, model, given, notes, trust, elapsed_s) -> dict:
    cells = [r for r in rows if r["is_cell"]]
    counts = {name: {str(k): sum(1 for r in cells if r[name] == k)
                     for k in model.config.classes[name]}
              for name in ("sarcomerisation", "directionality", "cell_source")}
    warnings = list(notes)
    if not rows:
        warnings.append("no candidate ROIs: nothing above the background in this field"
                        if not given else "the labels image has no ROI (all 0)")
    scores = [r["structure_score"] for r in cells]
    lengths = [r["sarcomere_length_um"] for r in cells if np.isfinite(r["sarcomere_length_um"])]
    return {
        "schema_version": CELLS_SCHEMA_VERSION, "shape_yx": list(labels.shape),
        "pixel_um": pixel_um, "rois_from": "labels" if given else "segmentation",
        "model": str(model.path) if model.path else model.config.name,
        "is_cell_threshold": float(model.thresholds["is_cell"]),
        "n_candidates": len(rows), "n_cells": len(cells), "n_rejected": len(rows) - len(cells),
        "structure_score_mean": float(np.mean(scores)) if scores else None,
        "sarcomere_length_um_median": float(np.median(lengths)) if lengths else None,
        "n_sarcomere_length_measured": len(lengths), "class_counts": counts,
        "quality": {"calibration_trust": trust, "warnings": warnings},
        "elapsed_s": round(elapsed_s, 3),
    }
