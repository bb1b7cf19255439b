"""Cross-validation of the directionality heads by field (the ``cv`` command of
:mod:`offline.experiments.cells_directionality`, whose docstring has the commands): the same
heads as ``castream train-cells`` trained on four folds and scored on the fifth, from dumps
with the extra orientation cues or from the train-cells candidate caches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: extra cues that are angles in degrees (given to the heads as ln(1 + degrees))
ANGLES = ("s15", "s25", "s4", "s4_p05", "q50_4", "q75_4", "q90_4", "s15_zd", "s15_other",
          "s15_unw_zd")
QUANTILES = ["q50_4", "q75_4", "q90_4", "f10_4", "f20_4"]

TARGET_NAMES = ("structure_score", "sarcomerisation", "directionality", "source_index", "iou",
                "spread_true", "field")


def _load(paths, field_offset=0):
    parts = [np.load(p) for p in paths]
    x = np.concatenate([np.concatenate([p["features"], p["extra"]], 1) for p in parts])
    t = np.concatenate([p["targets"] for p in parts])
    return x, dict(zip(TARGET_NAMES, t.T, strict=True)), [str(n) for n in parts[0]["names"]]


def _heads(n_features: int, hidden: int):
    import torch.nn as nn

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(0.1),
                                       nn.Linear(hidden, hidden), nn.ReLU())
            self.score, self.sarc = nn.Linear(hidden, 1), nn.Linear(hidden, 4)
            self.dir, self.src = nn.Linear(hidden, 4), nn.Linear(hidden, 3)
            self.spread = nn.Linear(hidden, 1)

        def forward(self, x):
            import torch

            h = self.trunk(x)
            return (1 + 4 * torch.sigmoid(self.score(h).squeeze(1)), self.sarc(h), self.dir(h),
                    self.src(h), self.spread(h).squeeze(1) * 2 + 2.5)

    return Heads()


def _tensors(x, t, columns, angles, stats=None):
    import torch

    x = x[:, columns].copy()
    for j in angles:
        x[:, j] = np.log1p(x[:, j])
    for j in range(x.shape[1]):
        x[np.isnan(x[:, j]), j] = FILL.get(j, 0.0)
    if stats is None:
        stats = x.mean(0), np.maximum(x.std(0), 1e-6)
    spread = np.where(t["directionality"] == 1, np.maximum(t["spread_true"], 90.0),
                      t["spread_true"])
    return (torch.tensor((x - stats[0]) / stats[1], dtype=torch.float32),
            torch.tensor(t["structure_score"], dtype=torch.float32),
            torch.tensor(t["sarcomerisation"] - 1).long(),
            torch.tensor(t["directionality"] - 1).long(),
            torch.tensor(t["source_index"]).long(),
            torch.tensor(np.log1p(spread), dtype=torch.float32)), stats


FILL: dict[int, float] = {}


def _loss(out, data, aux):
    import torch.nn.functional as F

    loss = (F.mse_loss(out[0], data[1]) + F.cross_entropy(out[1], data[2])
            + F.cross_entropy(out[2], data[3]) + F.cross_entropy(out[3], data[4]))
    return loss + aux * F.mse_loss(out[4], data[5]) if aux else loss


def _fit(train, held, aux, hidden, seed, epochs=1500):
    import torch

    torch.manual_seed(seed)
    net = _heads(train[0].shape[1], hidden)
    optim = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    best, best_state = np.inf, None
    for epoch in range(epochs):
        net.train()
        optim.zero_grad()
        _loss(net(train[0]), train, aux).backward()
        optim.step()
        if epoch % 10 == 0:
            net.eval()
            with torch.inference_mode():
                value = float(_loss(net(held[0]), held, aux))
            if value < best:
                best, best_state = value, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net.eval()


CONFIGS = {"base": ((), 0.0, 64), "aux": ((), 1.0, 64),
           "zd": (("s15_zd", "s15_other"), 0.0, 64), "s4coh": (("s4", "coh15"), 0.0, 64),
           "q": (tuple(QUANTILES), 0.0, 64), "q_aux": (tuple(QUANTILES), 1.0, 64),
           "h128": ((), 0.0, 128)}


def _load_candidates(paths, n_train=None):
    """True cells of ``castream train-cells`` candidate caches (``train[-randomized]-*.npz``
    and ``val-*.npz`` as :func:`offline.cellstruct.dataset.build_candidates` writes them, or
    chunks of training fields in the same format): the packaged model's features and the
    :data:`TARGET_NAMES` targets (``spread_true`` NaN: the caches do not hold it), plus
    ``val`` (1 for validation cells). Training cells of fields ``n_train`` and up are left out."""
    from engine.cells.features import FEATURE_NAMES

    xs, ts = [], []
    for path in paths:
        data = np.load(path)
        names = tuple(str(n) for n in data["names"]) if "names" in data.files else FEATURE_NAMES
        if names != tuple(FEATURE_NAMES):
            raise ValueError(f"{path}: features {names} are not the model's")
        is_val = Path(path).name.startswith("val")
        keep = data["t_is_cell"] == 1
        if n_train is not None and not is_val:
            keep &= data["t_field"] < n_train
        xs.append(data["features"][keep].astype(float))
        ts.append({"structure_score": data["t_structure_score"][keep],
                   "sarcomerisation": data["t_sarcomerisation"][keep],
                   "directionality": data["t_directionality"][keep],
                   "source_index": data["t_source_index"][keep], "iou": data["t_iou"][keep],
                   "spread_true": np.full(int(keep.sum()), np.nan),
                   "field": data["t_field"][keep],
                   "val": np.full(int(keep.sum()), float(is_val))})
    t = {k: np.concatenate([p[k] for p in ts]) for k in ts[0]}
    return np.concatenate(xs), t, list(FEATURE_NAMES)


def _split_rows(x, t, keep):
    return x[keep], {n: v[keep] for n, v in t.items()}


def candidates_sets(paths, pool_fields: int, train_fields: int):
    """With candidate caches: the cross-validated cells (training fields below
    ``pool_fields`` and every validation field) and the extra training cells (training
    fields ``pool_fields`` … ``train_fields - 1``, added to every fold's training side)."""
    if train_fields < pool_fields:
        raise ValueError("--train-fields must be at least --pool-fields")
    x, t, names = _load_candidates(paths, train_fields)
    pool = (t["val"] == 1) | (t["field"] < pool_fields)
    extra = _split_rows(x, t, ~pool) if (~pool).any() else None
    x_pool, t_pool = _split_rows(x, t, pool)
    return x_pool, t_pool, names, extra


def cross_validate(dumps, extra_dumps, config: str, seed: int = 0) -> dict:
    """Pooled out-of-fold figures of one configuration (see the module docstring)."""
    x, t, names = _load(dumps)
    extra = _load(extra_dumps)[:2] if extra_dumps else None
    return cross_validate_arrays(x, t, names, extra, config, (seed,))


def cross_validate_arrays(x, t, names, extra, config: str, seeds=(0,)) -> dict:
    """Pooled out-of-fold figures of one configuration on the cells ``x``, ``t`` (folds
    ``field % 5``), ``extra`` = (x, t) added to every fold's training side. With several
    ``seeds`` one head per seed and fold; the figures are those of the seeds' averaged
    class probabilities and score (as the packaged heads' ensemble), and
    ``directionality_f1_seeds`` those of each seed alone."""
    import torch
    from scipy.stats import spearmanr
    from sklearn.metrics import f1_score

    from engine.cells.features import FEATURE_NAMES
    from engine.cells.patterns import NO_SPREAD_LOG

    torch.set_num_threads(1)
    added, aux, hidden = CONFIGS[config]
    if aux and np.isnan(t["spread_true"]).any():
        raise ValueError(f"config {config} needs the realized spread (dumps, not candidates)")
    chosen = list(FEATURE_NAMES) + list(added)
    missing = [n for n in chosen if n not in names]
    if missing:
        raise ValueError(f"config {config} needs {missing} (dumps, not candidates)")
    columns = [names.index(n) for n in chosen]
    angles = [j for j, n in enumerate(chosen) if n in ANGLES]
    FILL.clear()
    FILL.update({j: NO_SPREAD_LOG for j, n in enumerate(chosen)
                 if n in ANGLES or n == "orientation_spread_log"})
    FILL.update({chosen.index("sarcomere_length_um"): 1.85})
    fold = (t["field"] % 5).astype(int)
    proba = {k: np.zeros((len(seeds), len(x), m)) for k, m in (("dir", 4), ("sarc", 4),
                                                                  ("src", 3))}
    estimate = np.zeros((len(seeds), len(x)))
    sizes = []
    for k in range(5):
        keep = fold != k
        x_tr, t_tr = _split_rows(x, t, keep)
        if extra is not None:
            x_tr = np.concatenate([x_tr, extra[0]])
            t_tr = {n: np.concatenate([v, extra[1][n]]) for n, v in t_tr.items()
                    if n in extra[1]}
        sizes.append(len(x_tr))
        train, stats = _tensors(x_tr, t_tr, columns, angles)
        held, _ = _tensors(*_split_rows(x, t, ~keep), columns, angles, stats)
        for i, seed in enumerate(seeds):
            net = _fit(train, held, aux, hidden, seed)
            with torch.inference_mode():
                out = net(held[0])
            proba["sarc"][i, ~keep] = torch.softmax(out[1], 1).numpy()
            proba["dir"][i, ~keep] = torch.softmax(out[2], 1).numpy()
            proba["src"][i, ~keep] = torch.softmax(out[3], 1).numpy()
            estimate[i, ~keep] = out[0].numpy()
    predicted = {k: v.mean(0).argmax(1) + (0 if k == "src" else 1) for k, v in proba.items()}
    score = estimate.mean(0)
    result = {"directionality_f1": f1_score(t["directionality"], predicted["dir"],
                                            average="weighted"),
              "sarcomerisation_f1": f1_score(t["sarcomerisation"], predicted["sarc"],
                                             average="weighted"),
              "source_accuracy": float(np.mean(predicted["src"] == t["source_index"])),
              "score_spearman": float(spearmanr(score, t["structure_score"]).statistic),
              "score_mae_raw": float(np.mean(np.abs(score - t["structure_score"]))),
              "n_cells": int(len(x)),
              "mean_training_cells_per_fold": int(round(np.mean(sizes)))}
    if len(seeds) > 1:
        result["directionality_f1_seeds"] = [
            round(float(f1_score(t["directionality"], p.argmax(1) + 1, average="weighted")), 4)
            for p in proba["dir"]]
    if "val" in t:
        is_val = t["val"] == 1
        result["directionality_f1_val_cells"] = f1_score(
            t["directionality"][is_val], predicted["dir"][is_val], average="weighted")
        result["directionality_f1_train_cells"] = f1_score(
            t["directionality"][~is_val], predicted["dir"][~is_val], average="weighted")
    result.update(_predicted=predicted["dir"], _data=(x, t, names))
    return result


def error_breakdown(result: dict) -> str:
    """Where the out-of-fold directionality errors are: by orientation coherence and by the
    candidate's IoU with the true cell; and how far the v4 spread is from the realized one
    on coherent, well-segmented cells."""
    x, t, names = result["_data"]
    wrong = result["_predicted"] != t["directionality"]
    coherence, iou = x[:, names.index("coh15")], t["iou"]
    lines = []
    for label, group in (("IoU < 0.85", iou < 0.85),
                         ("coh15 < 0.7", (coherence < 0.7) & (iou >= 0.85)),
                         ("coh15 0.7-0.9", (coherence >= 0.7) & (coherence < 0.9) & (iou >= 0.85)),
                         ("coh15 >= 0.9", (coherence >= 0.9) & (iou >= 0.85))):
        lines.append(f"{label}: {int(group.sum())} cells, {int((wrong & group).sum())} wrong "
                     f"({100 * wrong[group].mean():.0f} %)")
    spread = t["spread_true"]
    good = (coherence > 0.85) & (iou >= 0.95) & (spread > 4) & (spread < 25)
    ratio = np.log(x[good, names.index("s15")] / spread[good])
    q25, q50, q75 = np.percentile(ratio, [25, 50, 75])
    lines.append(f"ln(measured / realized spread), coh15 > 0.85, IoU >= 0.95, realized 4-25 deg "
                 f"({int(good.sum())} cells): median {q50:.3f}, IQR {q75 - q25:.3f}")
    return "\n".join(lines)
