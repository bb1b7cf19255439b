"""Training of the SarcNet-style crop scorer (:class:`engine.cells.networks.CropScorer`).

The patch CNN and the feature MLP are trained end to end on the true cells of the training
fields (minibatches of cells, ``n_patches`` of each cell's extracted patches drawn at random
every time, the whole batch turned by a random quarter turn and flipped: the same transform
for every patch of a cell, so the directions of its patches stay comparable), with the
structure heads' loss plus ``aux_weight`` × the squared error of ln(1 + realized myofibril
spread in degrees). The weights with the best validation loss (first ``n_patches`` patches,
the ones the engine uses) are kept.
"""

from __future__ import annotations

import logging

import numpy as np

from engine.cells.model import CellsModelConfig, build_network

from .dataset import Candidates
from .patch_data import CellPatches
from .train import _augment_dims, _head_tensors, _heads_loss, fit_best

log = logging.getLogger(__name__)

#: crop-CNN defaults (``castream train-cells --structure crop_cnn``)
CROP_CHANNELS = (8, 16, 32, 48)
CROP_EPOCHS = 20
AUX_WEIGHT = 0.5


def crop_structure_config(n_patches: int, patch_px: int, patch_pixel_um: float,
                          channels: tuple[int, ...] = CROP_CHANNELS, hidden: int = 64,
                          aux_weight: float = AUX_WEIGHT, extra: tuple[str, ...] = ()) -> dict:
    """``config.structure`` of a crop-CNN model (``extra``: patch channels after image and
    mask, :func:`engine.cells.patches.with_extra_channels`; none is written when empty)."""
    patches = {"patch_px": patch_px, "patch_pixel_um": patch_pixel_um, "n_patches": n_patches}
    if extra:
        patches["extra"] = list(extra)
    return {"kind": "crop_cnn", "hidden": hidden, "channels": list(channels),
            "patches": patches, "aux_weight": aux_weight}


def _cell_tensors(config: CellsModelConfig, cands: Candidates, patches: CellPatches):
    import torch

    if not np.array_equal(patches.index, np.flatnonzero(cands.targets["is_cell"] == 1)):
        raise ValueError("patches are not those of the candidates' true cells")
    features, score, classes = _head_tensors(config, cands)
    spread = np.log1p(np.nan_to_num(np.maximum(patches.spread_deg, 0.0), nan=0.0))
    return (torch.from_numpy(patches.patches), features, score, classes,
            torch.from_numpy(spread.astype(np.float32)))


def _loss(out, score, classes, spread, aux_weight: float):
    import torch.nn.functional as F

    return _heads_loss(out, score, classes) + aux_weight * F.mse_loss(out["spread_log"], spread)


def train_crop_scorer(config: CellsModelConfig, train: Candidates, val: Candidates,
                      train_patches: CellPatches, val_patches: CellPatches,
                      epochs: int = CROP_EPOCHS, seed: int = 0, batch: int = 32,
                      lr: float = 2e-3):
    """One :class:`CropScorer` (``config.structure`` from :func:`crop_structure_config`,
    without members) with the best validation loss over ``epochs``."""
    import torch

    torch.manual_seed(seed)
    net = build_network(config, "structure")
    k = int(config.structure["patches"]["n_patches"])
    aux = float(config.structure.get("aux_weight", AUX_WEIGHT))
    p_tr, x_tr, s_tr, c_tr, a_tr = _cell_tensors(config, train, train_patches)
    p_va, x_va, s_va, c_va, a_va = _cell_tensors(config, val, val_patches)
    p_va = p_va[:, :k].float()

    def batch_loss(idx, generator):
        choice = torch.rand(len(idx), p_tr.shape[1], generator=generator).argsort(1)[:, :k]
        patches = p_tr[idx[:, None], choice].float()
        patches = _augment_dims(patches, generator, (3, 4))
        out = net(patches, x_tr[idx])
        return _loss(out, s_tr[idx], {n: c[idx] for n, c in c_tr.items()}, a_tr[idx], aux)

    def val_loss():
        outs = [net(p_va[i:i + 64], x_va[i:i + 64]) for i in range(0, len(x_va), 64)]
        out = {name: torch.cat([o[name] for o in outs]) for name in outs[0]}
        return _loss(out, s_va, c_va, a_va, aux)

    return fit_best(net, batch_loss, val_loss, len(x_tr), epochs, lr, seed, batch,
                    f"crop scorer (seed {seed})")
