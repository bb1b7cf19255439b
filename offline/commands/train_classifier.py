"""``castream train-classifier [--cells N] [--out DIR] [--features truth|engine]``.

Simulates ``N`` WT and CPVT line-scan cells (training seeds), fits the Yang et al. logistic
regression on their sparks, cross-validates it (K-fold, leave-one-out, random division) and
scores the per-cell majority vote on ``N/2`` held-out simulated cells (test seeds).
"""

from __future__ import annotations

import argparse
import json
import logging

from offline.model_out import add_out_arguments

HELP = "train the spark-feature WT/CPVT cell classifier on simulated cells (Yang et al. 2021)"

log = logging.getLogger(__name__)
PACKAGED = "engine/models/default/cell_classifier"  # replaced only with --out ... --force


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cells", type=int, default=80, help="training cells (half WT, half CPVT)")
    add_out_arguments(parser, "classifier directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration-s", type=float, default=5.0, help="line-scan duration per cell")
    parser.add_argument("--features", choices=("truth", "engine"), default="engine",
                        help="spark features from the simulator's ground truth or measured by the "
                             "engine (its default detector; the default)")


def run(args: argparse.Namespace) -> int:
    from offline.cells import train_cell_classifier
    from offline.model_out import training_out_dir

    out_dir = training_out_dir(args.out, "cell_classifier", args.force)
    metrics = train_cell_classifier(n_cells=args.cells, out_dir=out_dir, seed=args.seed,
                                    duration_s=args.duration_s, features=args.features)
    log.info("cell classifier: %s", json.dumps({k: metrics[k] for k in ("cross_validation", "held_out")},
                                                default=float))
    return 0
