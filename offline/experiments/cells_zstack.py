"""Z-stacks measured on their maximum projection or on each cell's sharpest plane.

``python -m offline.experiments.cells_zstack --split val --fields 40`` renders the first
``--fields`` fields of a held-out split of the structure generator as 5-plane z-stacks (the
same layout, cells and patterns as that split's field; 0.5 µm apart), segments and curates
every one on its maximum projection (as ``castream cells`` does), and measures the features of
each candidate twice: on the maximum projection, and with every ROI taken from its own
sharpest plane (:func:`sharpest_planes`). The packaged model's heads
then score both, and the tables of ``castream evaluate MODEL cells:SPLIT`` are printed for
each (true cells: candidates with IoU ≥ 0.5 with a simulated cardiomyocyte).
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from engine.cells.analyze import measure_rows, structure_plane
from engine.cells.crops import roi_crops
from engine.cells.features import FEATURE_NAMES, field_levels
from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.segment import segment_candidates
from offline.cellstruct.dataset import (
    SPLIT_SEEDS,
    TARGETS,
    Candidates,
    candidate_targets,
    feature_matrix,
    simulate,
)
from offline.cellstruct.evaluate import evaluate

log = logging.getLogger(__name__)

MODES = ("max", "sharpest")
Z_SLICES = 5


def sharpest_planes(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A z-stack's ROIs each taken from their own sharpest plane, the rest of the field from its
    maximum projection; a 2-D image is returned as :func:`structure_plane` gives it.

    Sharpness of a ROI in a plane: the mean squared Laplacian of Gaussian (σ 1 px) over the ROI,
    relative to the plane's squared mean there (so a brighter, blurred plane does not win).
    A maximum projection mixes each pixel's brightest plane, and between Z-discs that is an
    out-of-focus plane's blur: the periodic pattern loses contrast.
    """
    plane = structure_plane(image)
    stack = np.asarray(image).squeeze() if np.asarray(image).ndim > 2 else np.asarray(image)
    if stack.ndim != 3 or not labels.any():
        return plane
    stack = stack.astype(np.float32)
    detail = np.stack([ndimage.gaussian_laplace(p, 1.0) ** 2 for p in stack])
    ids = np.unique(labels[labels > 0])
    energy = np.stack([ndimage.mean(d, labels, ids) for d in detail])
    level = np.stack([ndimage.mean(p, labels, ids) for p in stack])
    best = np.argmax(energy / np.maximum(level, 1e-12) ** 2, axis=0)
    composite = plane.copy()
    lookup = np.zeros(int(labels.max()) + 1, np.int64)
    lookup[ids] = best
    inside = labels > 0
    composite[inside] = stack[lookup[labels[inside]], np.nonzero(inside)[0],
                              np.nonzero(inside)[1]]
    return composite


def field_rows(field, model: CellsModel) -> dict[str, tuple[np.ndarray, np.ndarray, dict, int]]:
    """Features, curator crops and targets of one z-stack's candidates, for each mode."""
    plane = field.image.max(axis=0).astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um, **model.config.segmentation)
    background, foreground = field_levels(plane, labels)
    cfg = model.config.curator
    out = {}
    for mode in MODES:
        measured = plane if mode == "max" else sharpest_planes(field.image, labels)
        rows = measure_rows(measured, labels, field.pixel_um, model,
                            field_levels(measured, labels))
        crops = roi_crops(plane, labels, rows, field.pixel_um, background,
                          foreground - background, cfg["crop_px"], cfg["crop_scale"],
                          cfg["min_side_um"])
        out[mode] = (feature_matrix(rows, FEATURE_NAMES), crops,
                      candidate_targets(rows, labels, field),
                      sum(o["is_cell"] for o in field.objects))
    return out


def candidates(parts: list[tuple]) -> Candidates:
    targets = {n: np.concatenate([np.asarray(p[2][n], np.float64) for p in parts])
               for n in TARGETS if n != "field"}
    targets["field"] = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    return Candidates(np.concatenate([p[0] for p in parts]),
                      np.concatenate([p[1] for p in parts]).astype(np.float32), targets,
                      int(sum(p[3] for p in parts)), FEATURE_NAMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=sorted(SPLIT_SEEDS))
    parser.add_argument("--fields", type=int, default=40)
    parser.add_argument("--model", default=None, help="cells model directory (default: packaged)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = CellsModel.load(args.model or DEFAULT_CELLS_MODEL)
    parts: dict[str, list] = {mode: [] for mode in MODES}
    for index in tqdm(range(args.fields), desc="z-stack fields", mininterval=10.0):
        for mode, part in field_rows(simulate(args.split, index, z_slices=Z_SLICES), model).items():
            parts[mode].append(part)
    summary = {}
    for mode in MODES:
        result = evaluate(model, None, candidates(parts[mode]), f"{args.split} z-stacks, {mode}")
        summary[mode] = {
            "score_spearman": result["structure_score"]["model"]["spearman"],
            "score_mae": result["structure_score"]["model"]["mae"],
            **{f"{h}_wf1": result[h]["model"]["weighted_f1"]
               for h in ("sarcomerisation", "directionality")},
            "source_accuracy": result["cell_source"]["model"]["accuracy"],
            "sarcomere_length_median_err_pct":
                result["sarcomere_length"]["median_abs_error_pct"],
            "sarcomere_length_measured": result["sarcomere_length"]["measured_fraction"],
            "true_cells": result["structure_score"]["model"]["n"]}
    log.info("%s", json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
