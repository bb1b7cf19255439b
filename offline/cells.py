"""Spark features of simulated WT/CPVT cells and the cell-classifier training run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from offline import classifier
from offline.datasets import LabeledRecording, SimulatedSource

log = logging.getLogger(__name__)


def cell_sparks(rec: LabeledRecording, features: str = "truth") -> list[dict]:
    """Spark event dicts of one cell: ground truth, or measured by the engine (its default
    detector: the packaged line-scan network, classical where none is packaged) — the
    features the classifier sees when it runs inside the engine."""
    if features == "truth":
        return [ev for ev in rec.events if ev["kind"] == "spark"]
    from engine.pipeline import analyze_array

    result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, blank=rec.blank)
    return [ev.to_dict() for ev in result.events if ev.kind == "spark"]


def feature_table(n_cells: int, split: str, seed: int, duration_s: float,
                  features: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, cell index) over ``n_cells`` simulated cells alternating WT / CPVT."""
    xs, ys, cells = [], [], []
    for phenotype_index, phenotype in enumerate(classifier.CLASSES):
        source = SimulatedSource(kind="linescan", split=split, seed=seed + 1000 * phenotype_index,
                                 params={"phenotype": phenotype, "duration_s": duration_s})
        for i in range(n_cells // 2):
            x = classifier.features_from_events(cell_sparks(source.recording(i), features))
            xs.append(x)
            ys.append(np.full(len(x), phenotype_index))
            cells.append(np.full(len(x), 2 * i + phenotype_index))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cells)


def train_cell_classifier(n_cells: int, out_dir: str | Path, seed: int = 0, duration_s: float = 5.0,
                          features: str = "engine") -> dict[str, Any]:
    """Fit, cross-validate, score on held-out cells and save; returns the metrics."""
    x, y, _ = feature_table(n_cells, "train", seed, duration_s, features)
    log.info("%d sparks from %d training cells", len(y), n_cells)
    model = classifier.fit_logistic(x, y)
    cv = classifier.all_cross_validations(x, y, seed=seed)
    x_test, y_test, c_test = feature_table(max(2, n_cells // 2), "test", seed, duration_s, features)
    held_out = classifier.cell_vote_accuracy(model, x_test, y_test, c_test)
    metrics = {"trained_by": f"castream train-classifier --cells {n_cells} --seed {seed} "
                             f"--features {features}",
               "n_train_sparks": int(len(y)), "n_train_cells": n_cells, "features_source": features,
               "cross_validation": cv, "held_out": held_out,
               "note": "simulated cells (acquisition.simulate presets wt/cpvt); not real data"}
    classifier.save_classifier(model, out_dir, metrics)
    return metrics
