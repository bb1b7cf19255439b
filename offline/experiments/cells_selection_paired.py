"""Paired comparison of two cells models on one split's cached candidates (issue 13): the
selection sum S of each (``offline.cellstruct.evaluate.selection_score``'s figures) and a
bootstrap over fields of their difference.

``python -m offline.experiments.cells_selection_paired --split select --fields 60
--cache CACHE A_MODEL_DIR B_MODEL_DIR`` reads ``CACHE/{split}-{fields}{tag}.npz`` for each
model (the tag of its pattern net, as ``castream train-cells`` writes them; build them first
with ``castream train-cells --evaluate-only --report-splits SPLIT --no-baselines``; a
crop-CNN model also reads its patch cache, ``patch_data.build_patches``), checks
that both hold the same candidates and targets (the segmenter does not depend on the pattern
net), scores the true cells with each model and resamples the fields with replacement
(``--reps`` times, seed 0), recomputing both models' S on the same resampled cells. It
prints S of A and B, S(B) − S(A), its 2.5–97.5 % bootstrap interval and the fraction of
resamples where B is not higher. Reads only the given split; trains nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score

from engine.cells.model import CellsModel
from offline.cellstruct.dataset import build_candidates
from offline.cellstruct.patch_data import model_patches
from offline.commands.train_cells import _weights_tag


def _per_cell(model_dir: Path, split: str, n_fields: int, cache: Path) -> dict:
    model = CellsModel.load(model_dir)
    cands = build_candidates(split, n_fields, 1, cache, str(model_dir),
                             _weights_tag(model.weights))
    cells = cands.targets["is_cell"] == 1
    patches = None
    if model.structure_kind == "crop_cnn":   # the true cells' patches, cached beside
        patches = model_patches(split, cands, n_fields, cache,
                                model.config.structure["patches"])
    scored = model.score([r for r, keep in zip(cands.rows(), cells, strict=True) if keep],
                         patches)
    return {"field": cands.targets["field"][cells].astype(int),
            "truth": {"score": cands.targets["structure_score"][cells],
                      "sarcomerisation": cands.targets["sarcomerisation"][cells].astype(int),
                      "directionality": cands.targets["directionality"][cells].astype(int),
                      "source": cands.targets["source_index"][cells].astype(int)},
            "pred": {"score": np.asarray(scored["structure_score"], float),
                     "sarcomerisation": np.argmax(scored["sarcomerisation"], 1) + 1,
                     "directionality": np.argmax(scored["directionality"], 1) + 1,
                     "source": np.argmax(scored["cell_source"], 1)}}


def selection_sum(truth: dict, pred: dict, idx: np.ndarray) -> float:
    """S = Spearman + sarcomerisation wF1 + directionality wF1 + source accuracy − MAE."""
    t, p = {k: v[idx] for k, v in truth.items()}, {k: v[idx] for k, v in pred.items()}
    return float(spearmanr(p["score"], t["score"]).statistic
                 + f1_score(t["sarcomerisation"], p["sarcomerisation"], average="weighted")
                 + f1_score(t["directionality"], p["directionality"], average="weighted")
                 + accuracy_score(t["source"], p["source"])
                 - np.mean(np.abs(p["score"] - t["score"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="reference model directory")
    parser.add_argument("b", type=Path, help="candidate model directory")
    parser.add_argument("--split", default="select")
    parser.add_argument("--fields", type=int, default=60)
    parser.add_argument("--cache", type=Path, default=Path("build/cellstruct"))
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args(argv)
    a = _per_cell(args.a, args.split, args.fields, args.cache)
    b = _per_cell(args.b, args.split, args.fields, args.cache)
    if not (np.array_equal(a["field"], b["field"])
            and all(np.array_equal(a["truth"][k], b["truth"][k]) for k in a["truth"])):
        raise SystemExit("the two caches do not hold the same cells")
    everything = np.arange(len(a["field"]))
    s_a, s_b = (selection_sum(m["truth"], m["pred"], everything) for m in (a, b))
    fields = np.unique(a["field"])
    by_field = [np.flatnonzero(a["field"] == f) for f in fields]
    rng = np.random.default_rng(0)
    diffs, dir_diffs = [], []
    for _ in range(args.reps):
        idx = np.concatenate([by_field[i] for i in rng.integers(0, len(fields), len(fields))])
        diffs.append(selection_sum(b["truth"], b["pred"], idx)
                     - selection_sum(a["truth"], a["pred"], idx))
        dir_diffs.append(_directionality(b, idx) - _directionality(a, idx))
    diffs, dir_diffs = np.asarray(diffs), np.asarray(dir_diffs)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    sys.stdout.write(f"{args.split}: {len(fields)} fields, {len(everything)} true cells; "
                     f"S(A) {s_a:.3f}, S(B) {s_b:.3f}, S(B) - S(A) {s_b - s_a:+.3f}; "
                     f"bootstrap over fields ({args.reps}): 95 % interval "
                     f"[{lo:+.3f}, {hi:+.3f}], B not higher in {np.mean(diffs <= 0):.1%}\n")
    d_a, d_b = _directionality(a, everything), _directionality(b, everything)
    lo, hi = np.percentile(dir_diffs, [2.5, 97.5])
    sys.stdout.write(f"directionality wF1: A {d_a:.3f}, B {d_b:.3f}, B - A {d_b - d_a:+.3f}; "
                     f"95 % interval [{lo:+.3f}, {hi:+.3f}], B not higher in "
                     f"{np.mean(dir_diffs <= 0):.1%}\n")
    return 0


def _directionality(model_cells: dict, idx: np.ndarray) -> float:
    return float(f1_score(model_cells["truth"]["directionality"][idx],
                          model_cells["pred"]["directionality"][idx], average="weighted"))


if __name__ == "__main__":
    raise SystemExit(main())
