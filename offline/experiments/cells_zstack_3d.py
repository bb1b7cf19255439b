"""The 3-D head against the packaged 2-D heads on the same true cells of held-out z-stacks.

``python -m offline.experiments.cells_zstack_3d --head DIR --split val --fields 60
--clutter 0.6 --cache DIR`` reads (or builds, :mod:`offline.cellstruct.stack_data`) the true
cells of the first ``--fields`` z-stacks of the split, with out-of-plane clutter over a share
``--clutter`` of the cells (0: the default generator), and prints, for the 3-D head
(``stack_head.*`` in ``--head``), the cells model's 2-D heads on the maximum projection and
the same heads with each ROI from its sharpest plane: sarcomerisation and directionality
weighted F1 and cell-source accuracy, and the 3-D head's paired difference to the
maximum projection with a 95 % interval from resampling fields (2,000 resamples).
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.schema import HEADS
from engine.cells.stack_head import StackHead
from offline.cellstruct.stack_data import StackCells, build_stack_cells

log = logging.getLogger(__name__)

TARGET = {"sarcomerisation": "sarcomerisation", "directionality": "directionality",
          "cell_source": "source_index"}
#: the printed figure of each head: weighted F1 for the ratings, accuracy for the source
METRIC = {"sarcomerisation": "weighted_f1", "directionality": "weighted_f1",
          "cell_source": "accuracy"}
RESAMPLES = 2000


def truth_index(cells: StackCells, head: str) -> np.ndarray:
    """Class indices (0-based) of ``head``'s truth."""
    values = cells.targets[TARGET[head]].astype(int)
    return values if head == "cell_source" else values - 1


def figure(head: str, predicted: np.ndarray, truth: np.ndarray) -> float:
    if METRIC[head] == "accuracy":
        return float(accuracy_score(truth, predicted))
    return float(f1_score(truth, predicted, average="weighted"))


def stack_answers(head: StackHead, cells: StackCells) -> dict[str, np.ndarray]:
    """The 3-D head's class index per cell and head."""
    features = cells.features if head.config["use_features"] else \
        np.zeros((len(cells), 0), np.float32)
    scored = head.score(cells.patches, features)
    return {h: np.argmax(scored[h], axis=1) for h in HEADS}


def compare(head: StackHead, cells: StackCells, seed: int = 0,
            resamples: int = RESAMPLES) -> dict:
    """Figures of the 3-D head and the 2-D baselines, and the paired field resampling."""
    answers = {"3-D head": stack_answers(head, cells),
               "2-D, maximum projection": {h: cells.baselines[f"max_{h}"] for h in HEADS}}
    if all(f"sharp_{h}" in cells.baselines for h in HEADS):
        answers["2-D, sharpest plane"] = {h: cells.baselines[f"sharp_{h}"] for h in HEADS}
    fields = cells.targets["field"].astype(int)
    unique = np.unique(fields)
    members = [np.flatnonzero(fields == f) for f in unique]
    rng = np.random.default_rng(seed)
    result: dict = {"true_cells": len(cells), "fields": len(unique)}
    for h in HEADS:
        truth = truth_index(cells, h)
        result[h] = {name: figure(h, a[h], truth) for name, a in answers.items()}
        deltas = []
        for _ in range(resamples):
            pick = np.concatenate([members[k] for k in rng.integers(0, len(unique),
                                                                    len(unique))])
            deltas.append(figure(h, answers["3-D head"][h][pick], truth[pick])
                          - figure(h, answers["2-D, maximum projection"][h][pick], truth[pick]))
        low, high = np.percentile(deltas, [2.5, 97.5])
        result[h]["3-D − max, 95 % interval"] = [float(low), float(high)]
    return result


def markdown(result: dict, label: str) -> str:
    names = [n for n in result["sarcomerisation"] if not n.startswith("3-D −")]
    lines = [f"| {label} ({result['true_cells']} true cells, {result['fields']} fields) | "
             "sarcomerisation wF1 | directionality wF1 | source acc. |", "|---|---|---|---|"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{result[h][name]:.3f}" for h in HEADS) + " |")
    lines.append("| 3-D − max (95 % interval, fields resampled) | " + " | ".join(
        "{:+.3f} … {:+.3f}".format(*result[h]["3-D − max, 95 % interval"]) for h in HEADS)
        + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", required=True, help="directory holding stack_head.*")
    parser.add_argument("--model", default=str(DEFAULT_CELLS_MODEL),
                        help="cells model of the 2-D heads (default: packaged)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--fields", type=int, default=60)
    parser.add_argument("--clutter", type=float, default=0.6)
    parser.add_argument("--cache", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(1)
    model = CellsModel.load(args.model)
    cells = build_stack_cells(args.split, args.fields, args.clutter, model, args.cache,
                              sharpest=True)
    result = compare(StackHead.load(args.head), cells)
    label = f"{args.split} z-stacks, clutter {args.clutter:g}"
    log.info("%s\n%s", json.dumps(result, indent=1), markdown(result, label))


if __name__ == "__main__":
    main()
