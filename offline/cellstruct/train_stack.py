"""Train the AMES-style 3-D head on simulated z-stacks (``python -m offline.cellstruct.train_stack``).

``python -m offline.cellstruct.train_stack --out DIR [--fields 360 60] [--clutter 0.6]``
builds (or reads from ``--cache``) the true cells of the first training and validation
z-stacks (:mod:`.stack_data`: training seeds 0+, validation 1,000,000+; out-of-plane clutter
over a share ``--clutter`` of the cells), trains one or more
:class:`~engine.cells.networks3d.StackScorer` (seeds ``--seed``, ``--seed + 1``…; several are
averaged by :class:`~engine.cells.networks.HeadsEnsemble`) and writes
``stack_head.json`` + ``stack_head.safetensors`` (:mod:`engine.cells.stack_head`) into DIR,
with its ONNX graph ``stack_head.onnx`` checked against torch
(:func:`offline.export.export_stack_head`).

Training: minibatches of cells, the same random quarter turn, in-plane flip and depth flip
for every patch of a batch (augmentation only here, after the split by field: no copy of a
cell is on both sides, AMES's leak), AdamW, the epoch with the least validation loss (the
structure heads' loss: score MSE + cross-entropy of the three labels) kept. The feature
input is the cells model's standardized ROI features on the maximum projection (its
normalization copied into the head's config).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.patches import PATCH_PIXEL_UM, PATCH_PX
from engine.cells.stack_head import STACK_HEAD_SCHEMA, StackHead, project
from offline.export import export_stack_head

from .stack_data import N_PATCHES, Z_SLICES, Z_STEP_UM, StackCells, build_stack_cells
from .train import _augment_dims, _heads_loss, fit_best

log = logging.getLogger(__name__)

STACK_CHANNELS = (8, 16, 32)
STACK_EPOCHS = 25


def stack_head_config(model: CellsModel, channels=STACK_CHANNELS, hidden: int = 64,
                      use_features: bool = True, members: int = 1,
                      projection: bool = False) -> dict:
    """``stack_head.json`` of a head trained with ``model``'s feature normalization
    (``projection``: the control that sees only the maximum over the planes)."""
    cfg = model.config
    names = list(cfg.structure_features)
    return {"kind": "stack_cnn", "schema_version": STACK_HEAD_SCHEMA,
            "channels": list(channels), "hidden": hidden, "use_features": use_features,
            "members": members, "projection": projection,
            "patches": {"patch_px": PATCH_PX, "patch_pixel_um": PATCH_PIXEL_UM,
                        "n_patches": N_PATCHES},
            "z_slices": Z_SLICES, "z_step_um": Z_STEP_UM, "structure_features": names,
            "feature_mean": {n: cfg.feature_mean[n] for n in names},
            "feature_scale": {n: cfg.feature_scale[n] for n in names},
            "feature_fill": dict(cfg.feature_fill), "trained": {}}


def _tensors(cells: StackCells, config: dict):
    import torch

    t = cells.targets
    features = cells.features if config["use_features"] else \
        np.zeros((len(cells), 0), np.float32)
    patches = project(cells.patches) if config.get("projection") else cells.patches
    return (torch.from_numpy(patches), torch.from_numpy(features),
            torch.from_numpy(t["structure_score"].astype(np.float32)),
            {"sarcomerisation": torch.from_numpy(t["sarcomerisation"].astype(np.int64) - 1),
             "directionality": torch.from_numpy(t["directionality"].astype(np.int64) - 1),
             "cell_source": torch.from_numpy(t["source_index"].astype(np.int64))})


def train_stack_scorer(config: dict, train: StackCells, val: StackCells, epochs: int,
                       seed: int = 0, batch: int = 16, lr: float = 2e-3):
    """One :class:`StackScorer` with the least validation loss over ``epochs``."""
    import torch

    from engine.cells.networks3d import StackScorer

    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"no true cells to train on ({len(train)} training, {len(val)} "
                         "validation)")
    torch.manual_seed(seed)
    p_tr, x_tr, s_tr, c_tr = _tensors(train, config)
    p_va, x_va, s_va, c_va = _tensors(val, config)
    net = StackScorer(x_tr.shape[1], tuple(config["channels"]), int(config["hidden"]))

    def batch_loss(idx, generator):
        patches = _augment_dims(p_tr[idx].float(), generator, (4, 5))
        if bool(torch.randint(0, 2, (1,), generator=generator)):
            patches = torch.flip(patches, dims=(3,))  # clutter above or below: either way
        return _heads_loss(net(patches, x_tr[idx]), s_tr[idx],
                           {n: c[idx] for n, c in c_tr.items()})

    def val_loss():
        outs = [net(p_va[i:i + 32].float(), x_va[i:i + 32]) for i in range(0, len(x_va), 32)]
        return _heads_loss({n: torch.cat([o[n] for o in outs]) for n in outs[0]}, s_va, c_va)

    return fit_best(net, batch_loss, val_loss, len(x_tr), epochs, lr, seed, batch,
                    f"3-D head (seed {seed})")


def train_stack_head(model: CellsModel, train: StackCells, val: StackCells,
                     epochs: int = STACK_EPOCHS, seed: int = 0, members: int = 1,
                     use_features: bool = True, threads: int = 1,
                     projection: bool = False) -> StackHead:
    """A :class:`StackHead` of ``members`` scorers (seeds ``seed``…), not yet saved."""
    import torch

    from engine.cells.model import weights_of
    from engine.cells.networks import HeadsEnsemble

    torch.set_num_threads(threads)
    started = time.perf_counter()
    config = stack_head_config(model, use_features=use_features, members=members,
                               projection=projection)
    nets = [train_stack_scorer(config, train, val, epochs, seed + k) for k in range(members)]
    net = nets[0] if members == 1 else HeadsEnsemble(nets).eval()
    config["trained"] = {"train_cells": len(train), "val_cells": len(val), "epochs": epochs,
                         "seed": seed, "seconds": round(time.perf_counter() - started, 1)}
    weights = {k.split(".", 1)[1]: v for k, v in weights_of({"net": net}).items()}
    head = StackHead(config, weights)
    head._net = net
    return head


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for stack_head.{json,safetensors}")
    parser.add_argument("--model", default=str(DEFAULT_CELLS_MODEL),
                        help="cells model that segments and measures (default: packaged)")
    parser.add_argument("--fields", type=int, nargs=2, default=(360, 60),
                        metavar=("TRAIN", "VAL"))
    parser.add_argument("--clutter", type=float, default=0.6,
                        help="share of cells with out-of-plane clutter (0: none)")
    parser.add_argument("--epochs", type=int, default=STACK_EPOCHS)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-features", action="store_true",
                        help="the 3-D CNN alone, without the feature MLP")
    parser.add_argument("--projection", action="store_true",
                        help="control: the same network on the maximum over the planes only")
    parser.add_argument("--cache", default=None, help="directory of z-stack caches")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if min(args.fields) < 1 or args.epochs < 1 or args.members < 1:
        parser.error("--fields, --epochs and --members must be ≥ 1")
    import torch

    torch.set_num_threads(1)
    model = CellsModel.load(args.model)
    started = time.perf_counter()
    train = build_stack_cells("train", args.fields[0], args.clutter, model, args.cache)
    val = build_stack_cells("val", args.fields[1], args.clutter, model, args.cache,
                            sharpest=True)
    data_s = time.perf_counter() - started
    head = train_stack_head(model, train, val, args.epochs, args.seed, args.members,
                            not args.no_features, projection=args.projection)
    head.config["trained"].update(fields=list(args.fields), clutter=args.clutter,
                                  data_seconds=round(data_s, 1))
    head.save(args.out)
    export_stack_head(args.out)  # stack_head.onnx, checked against torch
    log.info("3-D head: %d training cells, %d validation cells; data %.0f s, training %.0f s "
             "-> %s", len(train), len(val), data_s, head.config["trained"]["seconds"],
             Path(args.out))
    log.info("%s", json.dumps(head.config["trained"]))


if __name__ == "__main__":
    main()
