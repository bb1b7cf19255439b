"""Each member of a cells model's structure ensemble on one split, beside the ensemble (issue
13): the seed-to-seed spread of a configuration.

``python -m offline.experiments.cells_crop_members MODEL_DIR --split val --fields 60
--cache CACHE`` reads the split's cached candidates (``castream train-cells`` writes them,
keyed by the model's pattern net) and, for a crop-CNN model, its patch cache; every member
is scored alone with the ensemble's curator and score map (the map was tuned on validation
for the ensemble, so a member's MAE is slightly pessimistic). Prints one markdown row per
member and one for the ensemble. Trains nothing.

Several model directories (``--merge OUT``, ``--split val`` only) are merged into one
ensemble of all their members (curator, thresholds and the rest of the config of the first;
the score map re-tuned on the validation cells, as training does) and saved to ``OUT``: the
ensemble of seeds trained in separate runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from engine.cells.model import CellsModel
from offline.cellstruct.dataset import build_candidates
from offline.cellstruct.evaluate import evaluate, selection_score
from offline.cellstruct.patch_data import model_patches
from offline.commands.train_cells import _weights_tag


def member_model(model: CellsModel, k: int) -> CellsModel:
    """The ensemble's ``k``-th structure member as a one-member model."""
    prefix = f"structure.members.{k}."
    weights = {key: value for key, value in model.weights.items()
               if not key.startswith("structure.")}
    weights.update({"structure.members.0." + key[len(prefix):]: value
                    for key, value in model.weights.items() if key.startswith(prefix)})
    config = replace(model.config, structure={**model.config.structure, "members": 1})
    return CellsModel(config, weights, dict(model.thresholds))


def merged_model(models: list[CellsModel]) -> CellsModel:
    """One ensemble of the structure members of ``models`` (everything else the first's)."""
    first = models[0]
    if len(models) == 1:
        return first
    weights = {key: value for key, value in first.weights.items()
               if not key.startswith("structure.")}
    k = 0
    for model in models:
        for j in range(int(model.config.structure.get("members", 1))):
            prefix = f"structure.members.{j}."
            weights.update({f"structure.members.{k}." + key[len(prefix):]: value
                            for key, value in model.weights.items() if key.startswith(prefix)})
            k += 1
    config = replace(first.config, structure={**first.config.structure, "members": k})
    return CellsModel(config, weights, dict(first.thresholds))


def _retuned(model: CellsModel, cands, patches) -> CellsModel:
    """``model`` with its score map re-tuned on the true cells of ``cands``."""
    from offline.cellstruct.train import tune_score_map

    cells = cands.targets["is_cell"] == 1
    rows = [r for r, keep in zip(cands.rows(), cells, strict=True) if keep]
    estimate = model.score(rows, patches)["organisation_estimate"]
    score_map = tune_score_map(estimate, cands.targets["structure_score"][cells])
    model.config.structure = {**model.config.structure, "score_map": score_map}
    return model


def _row(label: str, result: dict) -> str:
    s = result["structure_score"]["model"]
    return (f"| {label} | {s['spearman']:.3f} | {s['mae']:.3f} | "
            f"{result['sarcomerisation']['model']['weighted_f1']:.3f} | "
            f"{result['directionality']['model']['weighted_f1']:.3f} | "
            f"{result['cell_source']['model']['accuracy']:.3f} | {selection_score(result):.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="+")
    parser.add_argument("--split", default="val")
    parser.add_argument("--fields", type=int, default=60)
    parser.add_argument("--cache", type=Path, default=Path("build/cellstruct"))
    parser.add_argument("--merge", type=Path, help="merge the model directories into one "
                        "ensemble saved here (--split val)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if len(args.model) > 1 and (args.merge is None or args.split != "val"):
        parser.error("several model directories need --merge OUT and --split val")
    model = merged_model([CellsModel.load(path) for path in args.model])
    cands = build_candidates(args.split, args.fields, 1, args.cache, str(args.model[0]),
                             _weights_tag(model.weights))
    patches = None
    if model.structure_kind == "crop_cnn":
        patches = model_patches(args.split, cands, args.fields, args.cache,
                                model.config.structure["patches"])
    if args.merge:
        _retuned(model, cands, patches).save(args.merge)
    lines = ["| model | Spearman | MAE | sarcomerisation wF1 | directionality wF1 | "
             "source acc. | S |", "|---|---|---|---|---|---|---|"]
    for k in range(int(model.config.structure.get("members", 1))):
        result = evaluate(member_model(model, k), None, cands, args.split, None, patches)
        lines.append(_row(f"member {k}", result))
    lines.append(_row("ensemble", evaluate(model, None, cands, args.split, None, patches)))
    sys.stdout.write(f"{' + '.join(map(str, args.model))} on {args.split} ({args.fields} fields)\n"
                     + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
