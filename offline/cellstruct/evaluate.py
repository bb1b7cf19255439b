"""Evaluation of a cells model on held-out simulated fields, each part against its baseline.

* curation: ROC AUC, precision/recall/F1 at the model's threshold; baseline: suite2p-style
  logistic regression on mask statistics (size, shape, intensity), threshold tuned the same way;
* detection: F1 of true cells found (candidate IoU ≥ 0.5 with a simulated cardiomyocyte and
  accepted by the curator), per field summed;
* structure score (true cells): Spearman, MAE, MSE, R²; baseline: ridge regression on the
  same features (Allen/Gerbin's linear model); also the heads' raw estimate before the
  rater-median map, against the raters' mean and against the hidden organisation;
* AMES heads: accuracy and weighted F1; baseline: multinomial logistic regression;
* sarcomere length: relative error of the classical measurement where it was measured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.cells.features import feature_matrix
from engine.cells.model import CellsModel
from engine.cells.patterns import PATTERN_CLASSES

from .dataset import Candidates
from .train import FEATURE_FILL, HEADS, tune_threshold

log = logging.getLogger(__name__)

BASELINE_CURATION = ("area_um2", "aspect_ratio", "solidity", "compactness", "eccentricity",
                     "mean_level", "intensity_cv", "intensity_skew")
#: SarcNet's / Gerbin et al.'s 11 features (the ridge baseline), when pattern fractions exist
SARCNET_FEATURES = ("area_um2", "aspect_ratio", "glcm_max_cv", "glcm_peak_height",
                    "glcm_peak_distance_um", *(f"frac_{n}" for n in PATTERN_CLASSES))
HEAD_TARGETS = {"sarcomerisation": "sarcomerisation", "directionality": "directionality",
                "cell_source": "source_index"}


def _matrix(cands: Candidates, names) -> np.ndarray:
    return feature_matrix(cands.rows(), list(names), FEATURE_FILL)


def fit_baselines(train: Candidates, val: Candidates) -> dict:
    """Baselines fitted on the training split (threshold on validation)."""
    curation = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000,
                                                                  class_weight="balanced"))
    curation.fit(_matrix(train, BASELINE_CURATION), train.targets["is_cell"])
    val_proba = curation.predict_proba(_matrix(val, BASELINE_CURATION))[:, 1]
    cells = train.targets["is_cell"] == 1
    x_cells = _matrix(train, train.names)[cells]
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(
        _matrix(train, _ridge_features(train))[cells], train.targets["structure_score"][cells])
    heads = {name: make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(
        x_cells, train.targets[target][cells].astype(int)) for name, target in HEAD_TARGETS.items()}
    return {"curation": curation, "curation_threshold": tune_threshold(
        val_proba, val.targets["is_cell"]), "ridge": ridge, "heads": heads}


def _ridge_features(cands: Candidates) -> tuple[str, ...]:
    return SARCNET_FEATURES if set(SARCNET_FEATURES) <= set(cands.names) else cands.names


def curation_metrics(proba: np.ndarray, is_cell: np.ndarray, threshold: float,
                     fields: np.ndarray, n_true_cells: int) -> dict:
    accepted = proba >= threshold
    tp = int(np.sum(accepted & (is_cell == 1)))
    fp, fn_cand = int(np.sum(accepted & (is_cell == 0))), int(np.sum(~accepted & (is_cell == 1)))
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn_cand, 1)
    missed = n_true_cells - tp  # true cells not found by segmentation or rejected
    return {"roc_auc": float(roc_auc_score(is_cell, proba)), "threshold": float(threshold),
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-9),
            "detection_f1": 2 * tp / max(2 * tp + fp + missed, 1),
            "n_candidates": int(len(is_cell)), "n_true_candidates": int(is_cell.sum()),
            "n_fields": int(len(np.unique(fields))), "n_true_cells": int(n_true_cells),
            "non_cell_fraction": float(1 - is_cell.mean())}


def score_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict:
    return {"spearman": float(spearmanr(predicted, truth).statistic),
            "mae": float(mean_absolute_error(truth, predicted)),
            "mse": float(mean_squared_error(truth, predicted)),
            "r2": float(r2_score(truth, predicted)), "n": int(len(truth))}


def class_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict:
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "weighted_f1": float(f1_score(truth, predicted, average="weighted")),
            "n": int(len(truth))}


def sarcomere_metrics(measured: np.ndarray, truth: np.ndarray) -> dict:
    ok = np.isfinite(measured)
    error = np.abs(measured[ok] / truth[ok] - 1) * 100
    return {"measured_fraction": float(ok.mean()) if len(ok) else 0.0,
            "median_abs_error_pct": float(np.median(error)) if error.size else None,
            "mean_abs_error_pct": float(np.mean(error)) if error.size else None,
            "p90_abs_error_pct": float(np.percentile(error, 90)) if error.size else None,
            "n": int(ok.sum())}


def selection_score(result: dict) -> float:
    """The selection sum S of docs/CELLS.md: score Spearman + sarcomerisation weighted F1 +
    directionality weighted F1 + cell-source accuracy − score MAE (the model's, on one
    split's true cells; the score as reported, after the rater-median map)."""
    score = result["structure_score"]["model"]
    return (score["spearman"] + result["sarcomerisation"]["model"]["weighted_f1"]
            + result["directionality"]["model"]["weighted_f1"]
            + result["cell_source"]["model"]["accuracy"] - score["mae"])


def evaluate(model: CellsModel, baselines: dict | None, cands: Candidates, name: str,
             figure: Path | None = None, patches: np.ndarray | None = None) -> dict:
    """All tables for one split (model and baselines side by side; the model alone when
    ``baselines`` is None); ``patches`` of the true cells for a crop-CNN model."""
    is_cell = cands.targets["is_cell"]
    proba = model.curate(cands.crops.astype(np.float32), cands.rows())
    base_proba = None if baselines is None else baselines["curation"].predict_proba(
        _matrix(cands, BASELINE_CURATION))[:, 1]
    n_true = cands.n_true_cells
    fields = cands.targets["field"]
    out = {"data": name, "curation": {
        "model": curation_metrics(proba, is_cell, model.thresholds["is_cell"], fields, n_true)}}
    if baselines is not None:
        out["curation"]["baseline_mask_statistics"] = curation_metrics(
            base_proba, is_cell, baselines["curation_threshold"], fields, n_true)
    cells = is_cell == 1
    rows = [r for r, keep in zip(cands.rows(), cells, strict=True) if keep]
    scored = model.score(rows, patches)
    x_cells = _matrix(cands, cands.names)[cells]
    truth_score = cands.targets["structure_score"][cells]
    ridge_x = _matrix(cands, _ridge_features(cands))[cells]
    out["structure_score"] = {
        "model": score_metrics(scored["structure_score"], truth_score),
        "model_unmapped": score_metrics(scored["organisation_estimate"], truth_score),
        "model_vs_hidden_organisation": score_metrics(scored["organisation_estimate"],
                                                      cands.targets["organisation"][cells])}
    if baselines is not None:
        out["structure_score"].update(
            baseline_ridge=score_metrics(baselines["ridge"].predict(ridge_x), truth_score),
            baseline_ridge_features=list(_ridge_features(cands)))
    for head, target in HEAD_TARGETS.items():
        truth = cands.targets[target][cells].astype(int)
        offset = 0 if head == "cell_source" else 1
        out[head] = {"model": class_metrics(np.argmax(scored[head], 1) + offset, truth)}
        if baselines is not None:
            out[head]["baseline_logistic"] = class_metrics(
                baselines["heads"][head].predict(x_cells), truth)
    sarc = cands.names.index("sarcomere_length_um")
    out["sarcomere_length"] = sarcomere_metrics(
        cands.features[cells, sarc].astype(np.float64),
        cands.targets["sarcomere_length_true_um"][cells])
    out["selection_score"] = selection_score(out)
    if figure is not None:
        _figure(figure, out, proba, base_proba, is_cell, scored, truth_score, cands, cells)
    return out


def _figure(path, out, proba, base_proba, is_cell, scored, truth_score, cands, cells) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    fig, axes = plt.subplots(1, 5, figsize=(22, 4.4))
    for p, label in ((proba, "curator CNN"), (base_proba, "mask-statistics baseline")):
        if p is None:
            continue
        fpr, tpr, _ = roc_curve(is_cell, p)
        axes[0].plot(fpr, tpr, label=f"{label} AUC {roc_auc_score(is_cell, p):.3f}")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="curation ROC")
    axes[0].legend(fontsize=8)
    axes[1].scatter(truth_score, scored["structure_score"], s=8, alpha=0.6)
    axes[1].plot([1, 5], [1, 5], "k--", lw=0.8)
    m = out["structure_score"]["model"]
    axes[1].set(xlabel="rater score (mean of two)", ylabel="predicted score",
                title=f"score: Spearman {m['spearman']:.3f}, MAE {m['mae']:.2f}")
    for ax, head in zip(axes[2:], HEADS, strict=True):
        truth = cands.targets[HEAD_TARGETS[head]][cells].astype(int)
        offset = 0 if head == "cell_source" else 1
        labels = sorted(set(truth) | set(np.argmax(scored[head], 1) + offset))
        matrix = confusion_matrix(truth, np.argmax(scored[head], 1) + offset, labels=labels)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels,
               yticklabels=labels, xlabel="predicted", ylabel="true",
               title=f"{head}: wF1 {out[head]['model']['weighted_f1']:.3f}")
    fig.suptitle(f"cells model on {out['data']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(results: list[dict]) -> str:
    """The seeds' tables, model vs baseline, one block per split."""
    lines = []
    for res in results:
        c, b = res["curation"]["model"], res["curation"].get("baseline_mask_statistics")
        lines += [f"### {res['data']}", "",
                  f"{c['n_fields']} fields, {c['n_candidates']} candidates "
                  f"({100 * c['non_cell_fraction']:.0f} % not cells), {c['n_true_cells']} true cells",
                  "", "| curation | ROC AUC | threshold | precision | recall | F1 | detection F1 |",
                  "|---|---|---|---|---|---|---|"]
        for label, m in (("curator CNN", c), ("mask-statistics logistic", b)):
            if m is None:
                continue
            lines.append(f"| {label} | {m['roc_auc']:.3f} | {m['threshold']:.2f} | "
                         f"{m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                         f"{m['detection_f1']:.3f} |")
        s = res["structure_score"]
        lines += ["", "| structure score | Spearman | MAE | MSE | R² | n |", "|---|---|---|---|---|---|"]
        for label, key in (("structure model", "model"), ("its raw estimate", "model_unmapped"),
                           ("ridge baseline", "baseline_ridge")):
            if key not in s:
                continue
            m = s[key]
            lines.append(f"| {label} | {m['spearman']:.3f} | {m['mae']:.3f} | {m['mse']:.3f} | "
                         f"{m['r2']:.3f} | {m['n']} |")
        lines += ["", "| class head | accuracy | weighted F1 | baseline accuracy | "
                  "baseline weighted F1 |", "|---|---|---|---|---|"]
        for head in HEADS:
            m, bl = res[head]["model"], res[head].get("baseline_logistic")
            base = f"{bl['accuracy']:.3f} | {bl['weighted_f1']:.3f}" if bl else "– | –"
            lines.append(f"| {head} | {m['accuracy']:.3f} | {m['weighted_f1']:.3f} | {base} |")
        sl = res["sarcomere_length"]
        if sl["n"]:
            lines += ["", f"Sarcomere length (classical, {sl['n']} cells, measured in "
                      f"{100 * sl['measured_fraction']:.0f} % of true cells): median |error| "
                      f"{sl['median_abs_error_pct']:.2f} %, mean {sl['mean_abs_error_pct']:.2f} %, "
                      f"90th percentile {sl['p90_abs_error_pct']:.2f} %."]
        lines += ["", f"Selection sum S (Spearman + sarcomerisation wF1 + directionality wF1 "
                  f"+ source accuracy − MAE): {selection_score(res):.3f}", ""]
    return "\n".join(lines)
