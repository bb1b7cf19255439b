"""Spark-feature cell classifier (Yang et al. 2021): logistic regression on five z-scored
spark features, validated by K-fold, leave-one-out and random-division cross-validation, and a
per-cell majority vote.

The fitted model is written in the engine's ``CellClassifier`` JSON format (``config.json``):
``{"kind": "cell_classifier", "features": [...], "classes": ["wt", "cpvt"], "mean", "scale",
"coef", "intercept", "schema_version": 1}``. The fit is plain numpy (Newton–Raphson with a
small L2 penalty), so no extra dependency is needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FEATURES = ("amplitude_dff0", "rise_ms", "t50_ms", "fdhm_ms", "fwhm_um")
CLASSES = ("wt", "cpvt")
SCHEMA_VERSION = 1


@dataclass
class LogisticModel:
    """z-scoring + binary logistic regression; ``predict_proba`` gives P(classes[1])."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    features: tuple[str, ...] = FEATURES
    classes: tuple[str, ...] = CLASSES

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class index (0 or 1) per row."""
        return (self.decision(x) > 0).astype(np.int64)

    def to_config(self) -> dict:
        return {"kind": "cell_classifier", "features": list(self.features),
                "classes": list(self.classes), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": float(self.intercept), "schema_version": SCHEMA_VERSION}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> LogisticModel:
    """Fit z-scored, class-balanced, L2-regularized logistic regression (scikit-learn).

    Class balance matters: CPVT-like cells fire several times more sparks than wild-type
    ones, and without it the fit learns that prior instead of the spark shape, so the
    per-cell majority vote calls nearly every cell CPVT.

    Parameters
    ----------
    x
        ``(n_samples, n_features)`` features.
    y
        ``(n_samples,)`` labels in {0, 1}.
    l2
        Penalty per sample on the standardized coefficients (``C = 1 / (l2 · n)``).
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    fit = LogisticRegression(C=1.0 / (l2 * len(x)), class_weight="balanced", max_iter=1000)
    fit.fit((x - mean) / scale, np.asarray(y, dtype=int))
    return LogisticModel(mean, scale, fit.coef_[0].copy(), float(fit.intercept_[0]))


def accuracy(model: LogisticModel, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y)) if len(y) else float("nan")


Splitter = Callable[[int, np.random.Generator], list[tuple[np.ndarray, np.ndarray]]]


def kfold_splits(n: int, k: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """K shuffled folds (train, test) over ``n`` samples."""
    order = rng.permutation(n)
    folds = np.array_split(order, k)
    return [(np.concatenate(folds[:i] + folds[i + 1:]), folds[i]) for i in range(k)]


def random_division_splits(
    n: int, repeats: int, test_fraction: float, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` random train/test divisions with ``test_fraction`` held out."""
    n_test = max(1, round(n * test_fraction))
    out = []
    for _ in range(repeats):
        order = rng.permutation(n)
        out.append((order[n_test:], order[:n_test]))
    return out


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    l2: float = 1e-2,
) -> dict[str, float]:
    """Mean and SD of the test accuracy over ``splits``; pooled accuracy over all test rows."""
    scores, hits, total = [], 0, 0
    for train_idx, test_idx in splits:
        model = fit_logistic(x[train_idx], y[train_idx], l2=l2)
        pred = model.predict(x[test_idx])
        scores.append(float(np.mean(pred == y[test_idx])))
        hits += int(np.sum(pred == y[test_idx]))
        total += len(test_idx)
    return {"mean_accuracy": float(np.mean(scores)), "sd_accuracy": float(np.std(scores)),
            "pooled_accuracy": hits / total if total else float("nan"), "n_splits": len(splits)}


def all_cross_validations(
    x: np.ndarray, y: np.ndarray, seed: int = 0, k: int = 10, repeats: int = 20,
    test_fraction: float = 0.3, loo_max: int = 2000,
) -> dict[str, dict[str, float]]:
    """K-fold, leave-one-out (on at most ``loo_max`` samples) and random-division CV."""
    rng = np.random.default_rng(seed)
    n = len(y)
    out = {"kfold": cross_validate(x, y, kfold_splits(n, k, rng)),
           "random_division": cross_validate(x, y, random_division_splits(n, repeats, test_fraction, rng))}
    loo_idx = rng.permutation(n)[:loo_max]
    loo_splits = [(np.setdiff1d(np.arange(n), [i]), np.array([i])) for i in loo_idx]
    out["leave_one_out"] = cross_validate(x, y, loo_splits)
    out["leave_one_out"]["n_samples_evaluated"] = len(loo_idx)
    return out


def cell_vote_accuracy(
    model: LogisticModel, x: np.ndarray, y: np.ndarray, cell_ids: np.ndarray
) -> dict[str, float]:
    """Majority vote of the spark predictions per cell; accuracy over cells.

    Ties go to ``classes[1]`` (the diseased class), like a screening decision.
    """
    pred = model.predict(x)
    correct, n_cells = 0, 0
    for cell in np.unique(cell_ids):
        sel = cell_ids == cell
        vote = int(np.mean(pred[sel]) >= 0.5)
        truth = int(round(float(np.mean(y[sel]))))
        correct += int(vote == truth)
        n_cells += 1
    return {"cell_accuracy": correct / n_cells if n_cells else float("nan"), "n_cells": n_cells,
            "spark_accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
            "n_sparks": len(y)}


def save_classifier(model: LogisticModel, out_dir: str | Path, metrics: dict | None = None) -> Path:
    """Write ``config.json`` (through the engine's ``CellClassifier``) and ``metrics.json``."""
    from engine.cellclass import CellClassifier

    out = Path(out_dir)
    CellClassifier(mean=model.mean, scale=model.scale, coef=model.coef, intercept=model.intercept,
                   features=tuple(model.features), classes=tuple(model.classes)).save(out)
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    log.info("wrote cell classifier to %s", out)
    return out


def features_from_events(events: Sequence[dict], features: Sequence[str] = FEATURES) -> np.ndarray:
    """``(n_events, n_features)`` array of spark features; rows with a NaN are dropped."""
    rows = np.array([[float(ev[f]) for f in features] for ev in events], dtype=np.float64)
    if rows.size == 0:
        return rows.reshape(0, len(features))
    return rows[np.all(np.isfinite(rows), axis=1)]
