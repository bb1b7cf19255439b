"""Touching cells split between their nuclei (issue 13): the packaged segmenter against the
same with ``nuclei_split`` (:func:`engine.cells.segment.split_by_nuclei`), both curated and
scored by one cells model, on a range of validation fields, paired by field.

``python -m offline.experiments.cells_nuclei_split --fields 300 420`` simulates validation
fields 300–419 (seeds 1,000,300+), segments each both ways, measures, curates and scores the
candidates with the model (default: the packaged one) exactly as ``castream train-cells``
builds its candidates (:func:`offline.cellstruct.dataset.field_candidates`), and prints per
segmenter: candidates, true cells with a candidate at IoU ≥ 0.5, curation ROC AUC,
precision / recall at the model's threshold, detection F1, score Spearman / MAE and
directionality weighted F1; then the paired bootstrap (``--reps`` resamples of fields, seed
0) of the detection-F1 difference: its 2.5–97.5 % interval and the share of resamples where
the split is not higher. ``--candidate DIR`` adds a third row: another cells model
directory with its own segmentation settings and curator (e.g. one of
:mod:`offline.experiments.cells_curator_split`), compared with the packaged row the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

log = logging.getLogger(__name__)

def arms(model_dir: str, candidate: str | None) -> list[tuple[str, str, dict, float]]:
    """(name, model directory, segmentation, curation threshold) of each compared row."""
    from engine.cells.model import CellsModel

    model = CellsModel.load(model_dir)
    out = [("packaged", model_dir, dict(model.config.segmentation), model.thresholds["is_cell"]),
           ("nuclei split", model_dir, {**model.config.segmentation, "nuclei_split": True},
            model.thresholds["is_cell"])]
    if candidate:
        other = CellsModel.load(candidate)
        out.append((f"candidate {candidate}", candidate, dict(other.config.segmentation),
                    other.thresholds["is_cell"]))
    return out


def _field(index: int, rows: list[tuple[str, str, dict, float]]) -> dict:
    from engine.cells.features import FEATURE_NAMES
    from engine.cells.model import CellsModel
    from offline.cellstruct.dataset import Candidates, field_candidates

    out = {}
    for name, model_dir, segmentation, _ in rows:
        model = CellsModel.load(model_dir)
        features, crops, targets, n_true = field_candidates("val", index, model_dir,
                                                            "default", segmentation)
        targets = {k: np.asarray(v, np.float64) for k, v in targets.items()}
        cands = Candidates(features, crops, targets, n_true, FEATURE_NAMES, segmentation)
        proba = model.curate(crops.astype(np.float32), cands.rows())
        cells = targets["is_cell"] == 1
        scored = model.score([r for r, keep in zip(cands.rows(), cells, strict=True) if keep])
        out[name] = {"proba": proba, "is_cell": targets["is_cell"].astype(int),
                     "n_true": n_true, "score": np.asarray(scored["structure_score"], float),
                     "score_truth": targets["structure_score"][cells],
                     "direction": np.argmax(scored["directionality"], 1) + 1,
                     "direction_truth": targets["directionality"][cells].astype(int)}
    return out


def _detection(fields: list[dict], threshold: float) -> tuple[int, int, int]:
    tp = fp = missed = 0
    for f in fields:
        accepted = f["proba"] >= threshold
        t = int(np.sum(accepted & (f["is_cell"] == 1)))
        tp += t
        fp += int(np.sum(accepted & (f["is_cell"] == 0)))
        missed += f["n_true"] - t
    return tp, fp, missed


def _f1(tp: int, fp: int, missed: int) -> float:
    return 2 * tp / max(2 * tp + fp + missed, 1)


def summarize(results: list[dict], rows: list[tuple[str, str, dict, float]],
              reps: int) -> list[str]:
    from scipy.stats import spearmanr
    from sklearn.metrics import f1_score, roc_auc_score

    lines = ["| segmenter | candidates | true cells with a candidate | curation ROC AUC | "
             "precision / recall | detection F1 | score Spearman / MAE | directionality wF1 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, _, _, threshold in rows:
        fields = [r[name] for r in results]
        proba = np.concatenate([f["proba"] for f in fields])
        is_cell = np.concatenate([f["is_cell"] for f in fields])
        accepted = proba >= threshold
        tp, fp, missed = _detection(fields, threshold)
        score = np.concatenate([f["score"] for f in fields])
        truth = np.concatenate([f["score_truth"] for f in fields])
        direction = np.concatenate([f["direction"] for f in fields])
        direction_truth = np.concatenate([f["direction_truth"] for f in fields])
        precision = tp / max(int(accepted.sum()), 1)
        recall = tp / max(int(is_cell.sum()), 1)
        lines.append(
            f"| {name} | {len(is_cell)} | {int(is_cell.sum())} / "
            f"{sum(f['n_true'] for f in fields)} | {roc_auc_score(is_cell, proba):.3f} | "
            f"{precision:.3f} / {recall:.3f} | {_f1(tp, fp, missed):.3f} | "
            f"{spearmanr(score, truth).statistic:.3f} / {np.mean(np.abs(score - truth)):.3f} | "
            f"{f1_score(direction_truth, direction, average='weighted'):.3f} |")
    base, base_threshold = rows[0][0], rows[0][3]
    for name, _, _, threshold in rows[1:]:
        rng = np.random.default_rng(0)
        diffs = []
        for _ in range(reps):
            pick = rng.integers(0, len(results), len(results))
            a = _f1(*_detection([results[i][base] for i in pick], base_threshold))
            b = _f1(*_detection([results[i][name] for i in pick], threshold))
            diffs.append(b - a)
        diffs = np.array(diffs)
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        lines.append(f"detection F1 difference ({name} − {base}), {reps} paired resamples "
                     f"of {len(results)} fields: {lo:+.3f} … {hi:+.3f}; not higher in "
                     f"{100 * np.mean(diffs <= 0):.1f} %")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", type=int, nargs=2, metavar=("FIRST", "STOP"),
                        required=True)
    parser.add_argument("--model", default="engine/models/default/cells")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--candidate", help="a third row: this cells model directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    indices = range(*args.fields)
    rows = arms(args.model, args.candidate)
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(_field, indices, [rows] * len(indices)))
    for line in summarize(results, rows, args.reps):
        log.info("%s", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
