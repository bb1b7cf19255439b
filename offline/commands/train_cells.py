"""``castream train-cells``: train and evaluate the structure-image cells model on simulated
fields (pattern net, ROI curator, structure heads), write the model directory and its report.

Stages: the local pattern classifier on patches of training fields (validation fields pick
its epoch); every split's candidates (segmented by the engine, features incl. pattern
fractions, crops; cached under ``--cache`` keyed by the pattern net's weights); curator and
heads on the training split, curation threshold on validation; tables on the held-out test
split and on the variant generator, each model against its baseline; the curator's and the
structure network's ONNX graphs (``castream export``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
from pathlib import Path

from offline.model_out import add_out_arguments

HELP = ("train the structure-image cells model (pattern net, ROI curator, structure score, "
        "AMES heads) on simulated fields; evaluate on held-out and variant fields")

log = logging.getLogger(__name__)
PACKAGED = "engine/models/default/cells"  # --evaluate-only reads it by default
PATTERN_WIDTH = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_out_arguments(parser, "model directory (with --evaluate-only: the model to evaluate, "
                              f"default {PACKAGED}, whose metrics.json and report/ are rewritten)")
    parser.add_argument("--fields", type=int, nargs=4, default=[720, 60, 60, 60],
                        metavar=("TRAIN", "VAL", "TEST", "VARIANT"),
                        help="simulated fields per split (disjoint seed ranges; 720 training "
                             "fields since v5: directionality gained from more cells)")
    parser.add_argument("--pattern-fields", type=int, default=60,
                        help="training fields for the pattern net (a quarter for validation)")
    parser.add_argument("--pattern-epochs", type=int, default=30)
    parser.add_argument("--pattern-model", type=Path,
                        help="reuse the pattern net of this directory (a previous run's "
                             "CACHE/pattern-model) instead of training one")
    parser.add_argument("--curator-epochs", type=int, default=20)
    parser.add_argument("--curator-from", type=Path,
                        help="keep this model directory's curator, curation threshold and "
                             "feature normalization; train only the structure heads")
    parser.add_argument("--head-epochs", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2, help="processes simulating fields")
    parser.add_argument("--cache", type=Path, default=Path("build/cellstruct"),
                        help="cache of simulated candidates (.npz per split)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the model in --out instead of training one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--randomize-rendering", choices=("pattern-net", "heads", "all"),
                        help="render training fields with RenderStyle.randomized (domain "
                             "randomization around the default, never the variant's choices): "
                             "those of the pattern net, those of the curator/heads/baselines "
                             "(the training split's candidates), or both; validation, test "
                             "and variant fields are unchanged")
    parser.add_argument("--report-splits", nargs="+", default=["test", "variant"],
                        choices=("val", "test", "variant", "select"),
                        help="splits whose tables are printed and kept in metrics.json "
                             "(val: the validation fields the heads were selected on; "
                             "select: the selection split of rendering-robust candidates, "
                             "fields rendered by RenderStyle.randomized, docs/CELLS.md)")
    parser.add_argument("--select-fields", type=int, default=60,
                        help="fields of the selection split (seeds 4,000,000+)")
    parser.add_argument("--structure", choices=("mlp", "crop_cnn"), default="mlp",
                        help="structure model: MLP heads on the ROI features (v1-v6), or the "
                             "SarcNet-style crop CNN on fixed-µm patches of each cell plus an "
                             "MLP on the same features (patches re-simulated and cached per "
                             "split, docs/CELLS.md)")
    parser.add_argument("--crop-epochs", type=int, default=20)
    parser.add_argument("--crop-members", type=int, default=1,
                        help="crop scorers from seeds SEED, SEED+1, ... averaged")
    parser.add_argument("--crop-patches", type=int, default=8,
                        help="patches per cell the crop CNN sees (of 16 extracted)")
    parser.add_argument("--patch-px", type=int, default=48, help="patch side in pixels")
    parser.add_argument("--patch-pixel-um", type=float, default=0.2,
                        help="patch pixel size: each cell is resampled to it")
    parser.add_argument("--patch-channels", nargs="*", default=[], choices=("band",),
                        help="extra patch channels after image and mask: band = the image "
                             "band-passed on the sarcomere ring (engine/cells/patches.py)")
    parser.add_argument("--aux-weight", type=float, default=0.5,
                        help="weight of the auxiliary ln(1 + myofibril spread) regression")
    parser.add_argument("--no-baselines", action="store_true",
                        help="the model's figures only: no baselines, and with "
                             "--evaluate-only no training or validation candidates either")


def _weights_tag(weights: dict) -> str:
    """Cache key: the pattern net's weights and the features' names and version."""
    from engine.cells.features import FEATURE_NAMES, FEATURES_VERSION

    digest = hashlib.sha1(f"{FEATURES_VERSION}:{','.join(FEATURE_NAMES)}".encode())
    for key in sorted(weights):
        if key.startswith("patterns."):
            digest.update(key.encode() + weights[key].tobytes())
    return "-p" + digest.hexdigest()[:10]


def _pattern_stage(args: argparse.Namespace):
    """Train the pattern net; returns it, a model directory holding it and its metrics."""
    import torch

    from engine.cells.model import CellsModel, CellsModelConfig, weights_of
    from offline.cellstruct.patterns import pattern_data, pattern_metrics, train_pattern_net

    torch.set_num_threads(1)
    n_val = max(args.pattern_fields // 4, 2)
    rendering = _rendering(args, "pattern-net")
    net = train_pattern_net(pattern_data("train", args.pattern_fields, args.workers, rendering),
                            pattern_data("val", n_val, args.workers), args.pattern_epochs,
                            PATTERN_WIDTH, args.seed)
    metrics = pattern_metrics(net, pattern_data("test", n_val, args.workers))
    metrics["training_rendering"] = rendering
    holder = CellsModel(CellsModelConfig([], [], {}, {}, {}, patterns={"width": PATTERN_WIDTH}),
                        weights_of({"patterns": net}), {"is_cell": 0.5}, {"pattern_net": metrics})
    path = holder.save(args.cache / "pattern-model")
    log.info("pattern net: %s", json.dumps(metrics))
    return net, path, metrics


def _rendering(args: argparse.Namespace, stage: str) -> str:
    """Rendering of the training fields of ``stage`` ("pattern-net" or "heads")."""
    return "randomized" if getattr(args, "randomize_rendering", None) in (stage, "all") \
        else "default"


def _split_patches(structure: dict, data: dict, splits: dict, name: str, cache: Path,
                   training_rendering: str = "default", model_only: bool = True):
    """Patches of ``name``'s true cells for a crop-CNN ``structure`` (None for MLP heads),
    with the model's extra channels; with ``model_only`` just its ``n_patches`` per cell.
    Training fields are rendered with ``training_rendering``, the other splits by default."""
    from dataclasses import replace

    from engine.cells.patches import with_extra_channels
    from offline.cellstruct.patch_data import build_patches, model_patches

    if structure.get("kind", "mlp") != "crop_cnn":
        return None
    geometry = structure["patches"]
    rendering = training_rendering if name == "train" else "default"
    if model_only:
        return model_patches(name, data[name], splits[name], cache, geometry, rendering)
    patches = build_patches(name, data[name], splits[name], cache, rendering,
                            int(geometry["patch_px"]), float(geometry["patch_pixel_um"]))
    return replace(patches, patches=with_extra_channels(
        patches.patches, geometry.get("extra", []), float(geometry["patch_pixel_um"])))


def _crop_training(args: argparse.Namespace, data: dict, splits: dict):
    """What ``--structure crop_cnn`` trains on (None for the MLP heads)."""
    from offline.cellstruct.train import CropTraining
    from offline.cellstruct.train_crops import crop_structure_config

    if args.structure != "crop_cnn":
        return None
    structure = crop_structure_config(args.crop_patches, args.patch_px, args.patch_pixel_um,
                                      aux_weight=args.aux_weight,
                                      extra=tuple(args.patch_channels))
    train, val = (_split_patches(structure, data, splits, name, args.cache,
                                 _rendering(args, "heads"), model_only=False)
                  for name in ("train", "val"))
    return CropTraining(train, val, structure, args.crop_epochs, args.crop_members)


def split_candidates(splits: dict, pattern_path: Path, cache: Path | None, workers: int,
                     training_rendering: str = "default") -> dict:
    """Candidates of each split's first ``splits[name]`` fields (simulated, segmented with the
    segmentation settings and measured with the pattern net of the model directory
    ``pattern_path``; cached under ``cache`` unless None),
    training fields rendered with ``training_rendering``, the other splits by their own."""
    from engine.cells.model import CellsModel
    from offline.cellstruct.dataset import build_candidates

    holder = CellsModel.load(pattern_path)
    tag = _weights_tag(holder.weights)
    return {name: build_candidates(name, n, workers, cache, str(pattern_path), tag,
                                   training_rendering if name == "train" else "default",
                                   holder.config.segmentation)
            for name, n in splits.items()}


def evaluate_splits(model, data: dict, splits: dict, report_splits, report: Path,
                    baselines: bool, cache: Path | None,
                    training_rendering: str = "default") -> list[dict]:
    """The tables of ``report_splits`` (:func:`offline.cellstruct.evaluate.evaluate`), each
    split's figure written to ``report/cells_SPLIT.png``; with ``baselines`` the baselines
    are fitted on ``data["train"]`` (threshold on ``data["val"]``) and shown beside the
    model. ``cache`` holds a crop-CNN model's patches (a temporary folder when None)."""
    import tempfile

    from offline.cellstruct.evaluate import evaluate, fit_baselines

    fitted = fit_baselines(data["train"], data["val"]) if baselines else None
    report.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="castream-patches-") as scratch:
        return [evaluate(model, fitted, data[name], f"{name} ({splits[name]} fields)",
                         report / f"cells_{name}.png",
                         _split_patches(model.config.structure, data, splits, name,
                                        Path(cache or scratch), training_rendering))
                for name in report_splits]


def write_report(report: Path, command: str, pattern_result: dict, results: list[dict],
                 note: str = "") -> str:
    """``report/report.md`` (command, pattern net, the tables; ``note`` after them);
    returns the tables."""
    from offline.cellstruct.evaluate import markdown

    text = markdown(results) + (f"\n{note}\n" if note else "")
    (report / "report.md").write_text(f"Command: `{command}`\n\nPattern net (test patches): "
                                      f"{json.dumps(pattern_result)}\n\n{text}")
    return text


DATA_DESCRIPTION = ("simulated fields (acquisition/simulate/structure); test = held-out seeds, "
                    "variant = RenderStyle.variant() (never trained on), select = held-out "
                    "seeds rendered by RenderStyle.randomized")


def run(args: argparse.Namespace) -> int:
    from engine.cells.model import CellsModel
    from offline.cellstruct.train import train_cells_model
    from offline.model_out import training_out_dir

    splits = dict(zip(("train", "val", "test", "variant"), args.fields, strict=True))
    if "select" in args.report_splits:
        splits["select"] = args.select_fields
    if args.evaluate_only and args.no_baselines:
        splits = {name: n for name, n in splits.items() if name in args.report_splits}
    out = (args.out or Path(PACKAGED)) if args.evaluate_only else args.out
    args.out = training_out_dir(out, "cells", args.force, existing_ok=args.evaluate_only)
    if args.evaluate_only:
        model = CellsModel.load(args.out)
        pattern_path, pattern_result = args.out, model.metrics.get("pattern_net", {})
    elif args.pattern_model:
        holder = CellsModel.load(args.pattern_model)
        pattern_net, pattern_path = holder.net("patterns"), args.pattern_model
        pattern_result = holder.metrics.get("pattern_net", {})
    else:
        pattern_net, pattern_path, pattern_result = _pattern_stage(args)
    rendering = _rendering(args, "heads")
    data = split_candidates(splits, pattern_path, args.cache, args.workers, rendering)
    if not args.evaluate_only:
        model = train_cells_model(data["train"], data["val"], args.curator_epochs,
                                  args.head_epochs, args.seed, pattern_net, PATTERN_WIDTH,
                                  curator_from=CellsModel.load(args.curator_from)
                                  if args.curator_from else None,
                                  crops=_crop_training(args, data, splits))
    report = args.out / "report"
    results = evaluate_splits(model, data, splits, args.report_splits, report,
                              not args.no_baselines, args.cache, rendering)
    command = "castream " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if "train-cells" in sys.argv else "castream train-cells"
    exported = model.metrics.get("onnx_export") if args.evaluate_only else None
    model.metrics = {"command": command, "splits": splits, "data": DATA_DESCRIPTION,
                     "training_rendering": model.metrics.get("training_rendering", "default")
                     if args.evaluate_only else rendering,
                     "pattern_net": pattern_result, "results": results}
    if args.evaluate_only:
        if exported:
            model.metrics["onnx_export"] = exported  # same weights: the graphs still hold
        (args.out / "metrics.json").write_text(json.dumps(model.metrics, indent=2) + "\n")
    else:
        from offline.export import export_cells

        model.save(args.out)
        export_cells(args.out)  # curator, structure and pattern graphs, checked vs torch
    text = write_report(report, command, pattern_result, results)
    log.info("cells model report:\n%s", text)
    return 0
