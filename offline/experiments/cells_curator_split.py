"""A curator retrained on candidates of the nuclei-split segmenter (issue 13; a candidate
cells model built from the packaged one).

The nuclei split (:func:`engine.cells.segment.split_by_nuclei`) finds merged cells, but the
packaged curator, trained on the packaged segmenter's candidates, accepts pieces that are not
a cell (docs/CELLS.md, "Touching cells split between their nuclei"). This copies a cells
model directory, turns ``nuclei_split`` on in its ``segmentation``, retrains only its curator
on the candidates of the first ``--fields`` training fields segmented that way (default
rendering and 240 fields, as the packaged curator's; the packaged feature normalization, so
the structure heads are unchanged), tunes the curation threshold on the validation fields
segmented that way (best F1 with precision ≥ 0.9, as ``castream train-cells``), and writes
the model directory with its ONNX graphs:

``python -m offline.experiments.cells_curator_split --out build/cells-split --cache
build/cellstruct``; compare it with ``python -m offline.experiments.cells_nuclei_split
--fields A B --candidate build/cells-split``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SPLIT = {"nuclei_split": True}


def build(base: Path, out: Path, n_train: int, n_val: int, epochs: int, workers: int,
          cache: Path | None, seed: int = 0) -> Path:
    import numpy as np

    from engine.cells.model import CellsModel, weights_of
    from offline.cellstruct.dataset import build_candidates
    from offline.cellstruct.train import train_curator, tune_threshold
    from offline.commands.train_cells import _weights_tag

    packaged = CellsModel.load(base)
    tag = _weights_tag(packaged.weights)
    train, val = (build_candidates(split, n, workers, cache, str(base), tag, "default", SPLIT)
                  for split, n in (("train", n_train), ("val", n_val)))
    config = copy.deepcopy(packaged.config)
    config.segmentation = dict(SPLIT)
    curator = train_curator(config, train, val, epochs, seed)
    weights = {k: v for k, v in packaged.weights.items() if not k.startswith("curator.")}
    weights.update(weights_of({"curator": curator}))
    model = CellsModel(config, weights, dict(packaged.thresholds),
                       {"built_by": "python -m offline.experiments.cells_curator_split",
                        "from": str(base), "curator_training_fields": n_train,
                        "curator_validation_fields": n_val, "curator_epochs": epochs})
    model._nets = {"curator": curator}
    proba = model.curate(val.crops.astype(np.float32), val.rows())
    model.thresholds["is_cell"] = tune_threshold(proba, val.targets["is_cell"])
    log.info("threshold %.3f on %d validation candidates", model.thresholds["is_cell"],
             len(proba))
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("report", "metrics.json"))
    model.save(out)  # rewrites the weights, config and thresholds and re-exports the graphs
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=Path("engine/models/default/cells"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fields", type=int, nargs=2, default=(240, 60),
                        metavar=("TRAIN", "VAL"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.out.resolve() == args.base.resolve():
        parser.error("--out must not be the base model directory")
    build(args.base, args.out, *args.fields, args.epochs, args.workers, args.cache)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
