"""Training of the cells model: ROI curator (CNN on crops + mask statistics) and structure
heads (MLP on ROI features), threshold tuned on validation fields, written as a model
directory (:class:`engine.cells.model.CellsModel`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from engine.cells.features import FEATURE_NAMES, GEOMETRY, INTENSITY, feature_matrix
from engine.cells.model import (
    CellsModel,
    CellsModelConfig,
    build_network,
    rater_median_map,
    weights_of,
)
from engine.cells.patterns import NO_SPREAD_LOG

from .dataset import Candidates
from .patch_data import CellPatches

log = logging.getLogger(__name__)


@dataclass
class CropTraining:
    """What training a crop-CNN structure model needs besides the candidates."""

    train_patches: CellPatches
    val_patches: CellPatches
    structure: dict           # :func:`.train_crops.crop_structure_config`
    epochs: int
    members: int = 1

    def train(self, config: CellsModelConfig, train: Candidates, val: Candidates, seed: int):
        """``members`` crop scorers from seeds ``seed``, ``seed + 1``… (an ensemble)."""
        from engine.cells.networks import HeadsEnsemble

        from .train_crops import train_crop_scorer

        single = CellsModelConfig(**{**config.__dict__, "structure": {
            k: v for k, v in config.structure.items() if k != "members"}})
        return HeadsEnsemble([train_crop_scorer(single, train, val, self.train_patches,
                                                self.val_patches, self.epochs, seed + k)
                              for k in range(self.members)]).eval()

CURATION_FEATURES = (*GEOMETRY, *INTENSITY, "periodicity_log_ratio", "orientation_order")
STRUCTURE_FEATURES = FEATURE_NAMES
FEATURE_FILL = {"sarcomere_length_um": 1.85, "orientation_spread_log": NO_SPREAD_LOG}
HEADS = ("sarcomerisation", "directionality", "cell_source")
#: structure heads trained from seeds seed, seed + 1, …, averaged
HEAD_MEMBERS = 5
#: grid of the score map (rater SD, share of the raw estimate kept), chosen on validation
SCORE_MAP_GRID = ([0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5], [0.05, 0.1, 0.2, 0.4])


def make_config(train: Candidates, patterns: dict | None = None) -> CellsModelConfig:
    """Feature normalization from the training candidates only."""
    names = list(train.names)
    matrix = feature_matrix(train.rows(), names, FEATURE_FILL).astype(np.float64)
    mean, scale = matrix.mean(axis=0), np.maximum(matrix.std(axis=0), 1e-6)
    return CellsModelConfig(
        curation_features=list(CURATION_FEATURES),
        structure_features=[n for n in STRUCTURE_FEATURES if n in names],
        feature_mean=dict(zip(names, mean.tolist(), strict=True)),
        feature_scale=dict(zip(names, scale.tolist(), strict=True)),
        feature_fill=dict(FEATURE_FILL), patterns=patterns)


def _augment(crops, generator):
    """Random flips and quarter turns of a batch (training only, after the split)."""
    return _augment_dims(crops, generator, (2, 3))


def _augment_dims(images, generator, dims: tuple[int, int]):
    """One random quarter turn and flip of the image axes ``dims`` for the whole batch."""
    import torch

    k = int(torch.randint(0, 4, (1,), generator=generator))
    images = torch.rot90(images, k, dims=dims)
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        images = torch.flip(images, dims=(dims[1],))
    return images


def train_curator(config: CellsModelConfig, train: Candidates, val: Candidates,
                  epochs: int = 25, seed: int = 0, batch: int = 64):
    """Curator network with the best validation loss over ``epochs``."""
    import torch

    torch.manual_seed(seed)
    curator = build_network(config, "curator")
    data = [(torch.from_numpy(c.crops.astype(np.float32)),
             torch.from_numpy(config.standardized(c.rows(), config.curation_features)),
             torch.from_numpy(c.targets["is_cell"].astype(np.float32))) for c in (train, val)]
    (x_tr, e_tr, y_tr), (x_va, e_va, y_va) = data
    pos_weight = (len(y_tr) - y_tr.sum()) / y_tr.sum().clamp(min=1)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def batch_loss(idx, generator):
        return loss_fn(curator(_augment(x_tr[idx], generator), e_tr[idx]), y_tr[idx])

    return fit_best(curator, batch_loss, lambda: loss_fn(curator(x_va, e_va), y_va),
                    len(y_tr), epochs, 2e-3, seed, batch, "curator")


def fit_best(net, batch_loss, val_loss, n_train: int, epochs: int, lr: float, seed: int,
             batch: int, label: str, cosine: bool = False):
    """Minibatch AdamW over ``epochs``; keeps the weights with the best validation loss.

    ``batch_loss(indices, generator)`` is the training loss of one batch (augmenting with
    ``generator``), ``val_loss()`` the loss on the validation split; with ``cosine`` the
    learning rate falls from ``lr`` to 0 on a cosine over all the steps.
    """
    import torch

    optim = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optim, epochs * -(-n_train // batch))
                if cosine else None)
    generator = torch.Generator().manual_seed(seed)
    best, best_state = np.inf, None
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(n_train, generator=generator).split(batch):
            optim.zero_grad()
            batch_loss(idx, generator).backward()
            optim.step()
            if schedule is not None:
                schedule.step()
        net.eval()
        with torch.inference_mode():
            loss = float(val_loss())
        log.info("%s epoch %d: val loss %.4f", label, epoch + 1, loss)
        if loss < best:
            best, best_state = loss, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net.eval()


def _head_tensors(config: CellsModelConfig, cands: Candidates):
    import torch

    keep = cands.targets["is_cell"] == 1
    rows = [r for r, k in zip(cands.rows(), keep, strict=True) if k]
    t = {name: cands.targets[name][keep] for name in cands.targets}
    return (torch.from_numpy(config.standardized(rows, config.structure_features)),
            torch.from_numpy(t["structure_score"].astype(np.float32)),
            {"sarcomerisation": torch.from_numpy(t["sarcomerisation"].astype(np.int64) - 1),
             "directionality": torch.from_numpy(t["directionality"].astype(np.int64) - 1),
             "cell_source": torch.from_numpy(t["source_index"].astype(np.int64))})


def _heads_loss(out, score, classes):
    import torch.nn.functional as F

    loss = F.mse_loss(out["structure_score"], score)
    return loss + sum(F.cross_entropy(out[name], classes[name]) for name in HEADS)


def train_heads(config: CellsModelConfig, train: Candidates, val: Candidates,
                epochs: int = 1500, seed: int = 0):
    """Structure heads: ``config.structure["members"]`` MLPs from seeds ``seed``, ``seed+1``…
    (each the best of its own run on validation), averaged (a single MLP without members)."""
    from engine.cells.networks import HeadsEnsemble

    if "members" not in config.structure:
        return _train_head(config, train, val, epochs, seed)
    single = CellsModelConfig(**{**config.__dict__, "structure": {
        "hidden": config.structure["hidden"]}})
    return HeadsEnsemble([_train_head(single, train, val, epochs, seed + k)
                          for k in range(int(config.structure["members"]))]).eval()


def _train_head(config: CellsModelConfig, train: Candidates, val: Candidates, epochs: int,
                seed: int):
    """One structure-heads MLP (full-batch AdamW) with the best validation loss."""
    import torch

    torch.manual_seed(seed)
    heads = build_network(config, "structure")
    (x_tr, s_tr, c_tr), (x_va, s_va, c_va) = (_head_tensors(config, c) for c in (train, val))
    optim = torch.optim.AdamW(heads.parameters(), lr=3e-3, weight_decay=1e-3)
    best, best_state = np.inf, None
    for epoch in range(epochs):
        heads.train()
        optim.zero_grad()
        _heads_loss(heads(x_tr), s_tr, c_tr).backward()
        optim.step()
        if epoch % 10 == 0:
            heads.eval()
            with torch.inference_mode():
                val_loss = float(_heads_loss(heads(x_va), s_va, c_va))
            if val_loss < best:
                best, best_state = val_loss, {k: v.clone() for k, v in heads.state_dict().items()}
    log.info("structure heads: best val loss %.4f", best)
    heads.load_state_dict(best_state)
    return heads.eval()


def tune_score_map(estimate: np.ndarray, truth: np.ndarray) -> dict:
    """Rater SD and kept share of :func:`rater_median_map` with the least validation MAE."""
    best = None
    for rater_sd in SCORE_MAP_GRID[0]:
        for keep in SCORE_MAP_GRID[1]:
            mae = float(np.mean(np.abs(rater_median_map(estimate, rater_sd, keep) - truth)))
            if best is None or mae < best["val_mae"]:
                best = {"rater_sd": rater_sd, "keep": keep, "val_mae": mae}
    best["val_mae_unmapped"] = float(np.mean(np.abs(estimate - truth)))
    return best


def tune_threshold(proba: np.ndarray, is_cell: np.ndarray, min_precision: float = 0.9) -> float:
    """Threshold with the best F1 among those with precision ≥ ``min_precision`` (the
    highest-precision threshold when none reaches it)."""
    best = (-1.0, 0.5)
    fallback = (-1.0, 0.5)
    for threshold in np.unique(np.round(proba, 4)):
        accepted = proba >= threshold
        tp = float(np.sum(accepted & (is_cell == 1)))
        precision = tp / max(accepted.sum(), 1)
        recall = tp / max((is_cell == 1).sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        if precision >= min_precision and f1 > best[0]:
            best = (f1, float(threshold))
        fallback = max(fallback, (precision, float(threshold)))
    return best[1] if best[0] >= 0 else fallback[1]


def train_cells_model(train: Candidates, val: Candidates, curator_epochs: int = 25,
                      head_epochs: int = 1500, seed: int = 0, pattern_net=None,
                      pattern_width: int = 16, threads: int = 1,
                      curator_from: CellsModel | None = None,
                      crops: CropTraining | None = None) -> CellsModel:
    """Train curator and heads (on features that already include ``pattern_net``'s
    fractions, if any) and tune the curation threshold on ``val``.

    With ``curator_from`` (a cells model directory), its curator, curation threshold and
    feature normalization are kept as they are and only the structure heads are trained.
    With ``crops``, the structure model is the crop CNN ⊕ feature MLP
    (:mod:`.train_crops`) instead of the MLP heads.
    """
    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    config = make_config(train, None if pattern_net is None else {"width": pattern_width})
    config.structure["members"] = HEAD_MEMBERS if crops is None else crops.members
    if crops is not None:
        config.structure.update(crops.structure)
    if curator_from is not None:
        kept = curator_from.config
        config.curation_features, config.curator = list(kept.curation_features), dict(kept.curator)
        for name in ("feature_mean", "feature_scale", "feature_fill"):
            getattr(config, name).update(getattr(kept, name))
    nets = {"curator": train_curator(config, train, val, curator_epochs, seed)
            if curator_from is None else curator_from.net("curator"),
            "structure": train_heads(config, train, val, head_epochs, seed) if crops is None
            else crops.train(config, train, val, seed),
            "patterns": pattern_net}
    model = CellsModel(config, weights_of(nets), {"is_cell": 0.5})
    model._nets = dict(nets)
    if curator_from is None:
        proba = model.curate(val.crops.astype(np.float32), val.rows())
        model.thresholds["is_cell"] = tune_threshold(proba, val.targets["is_cell"])
    else:
        model.thresholds["is_cell"] = float(curator_from.thresholds["is_cell"])
    cells = val.targets["is_cell"] == 1
    val_rows = [r for r, keep in zip(val.rows(), cells, strict=True) if keep]
    val_patches = None if crops is None else crops.val_patches.patches[
        :, : int(config.structure["patches"]["n_patches"])]
    config.structure["score_map"] = tune_score_map(
        model.score(val_rows, val_patches)["organisation_estimate"],
        val.targets["structure_score"][cells])
    log.info("trained in %.0f s; is_cell threshold %.3f; score map %s",
             time.perf_counter() - started, model.thresholds["is_cell"],
             config.structure["score_map"])
    return model
