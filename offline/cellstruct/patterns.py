"""Training data and training of the local pattern classifier (PatternNet) from the
simulator's per-pixel pattern map, on the same normalization the engine uses."""

from __future__ import annotations

import logging

import numpy as np

from engine.cells.features import field_levels
from engine.cells.patterns import PATTERN_CLASSES, STRIDE, normalized
from engine.cells.segment import segment_candidates

from .dataset import simulate
from .train import fit_best

log = logging.getLogger(__name__)

PATCH_PX = 96


def normalized_field(split: str, index: int, rendering: str = "default"):
    """Field ``index`` of ``split`` and its plane as every cells network sees it (the
    maximum projection of a z-stack, normalized by the engine's field levels)."""
    field = simulate(split, index, rendering)
    plane = (field.image.max(axis=0) if field.image.ndim == 3 else field.image).astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um)
    background, foreground = field_levels(plane, labels)
    return field, normalized(plane, background, foreground - background)


def patch_windows(rng: np.random.Generator, centres: np.ndarray, shape: tuple[int, int],
                  n: int, centred_fraction: float) -> list[tuple[slice, slice]]:
    """``n`` windows of ``PATCH_PX`` square, on the ``STRIDE`` grid, inside ``shape``; a
    ``centred_fraction`` of them centred on a row of ``centres`` (``argwhere`` output), the
    rest anywhere."""
    half = PATCH_PX // 2
    windows = []
    for _ in range(n):
        if centres.size and rng.random() < centred_fraction:
            cy, cx = centres[rng.integers(len(centres))]
        else:
            cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        cy = int(np.clip(cy, half, shape[0] - half)) // STRIDE * STRIDE
        cx = int(np.clip(cx, half, shape[1] - half)) // STRIDE * STRIDE
        windows.append((slice(cy - half, cy + half), slice(cx - half, cx + half)))
    return windows


def field_patches(split: str, index: int, per_field: int = 24, rendering: str = "default",
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``per_field`` normalized patches (n, 1, 96, 96) and their class maps (n, 48, 48);
    80 % of the patches are centred inside an object (``rendering`` as in
    :func:`~offline.cellstruct.dataset.simulate`)."""
    field, image = normalized_field(split, index, rendering)
    windows = patch_windows(np.random.default_rng([index, 5]), np.argwhere(field.labels > 0),
                            image.shape, per_field, 0.8)
    xs = [image[window][None] for window in windows]
    ys = [field.pattern_map[window][::STRIDE, ::STRIDE] for window in windows]
    return np.stack(xs), np.stack(ys).astype(np.int64)


def pattern_data(split: str, n_fields: int, workers: int = 2, rendering: str = "default",
                 ) -> tuple[np.ndarray, np.ndarray]:
    from concurrent.futures import ProcessPoolExecutor

    from .dataset import _Serial

    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
        parts = list(pool.map(field_patches, [split] * n_fields, range(n_fields),
                              [24] * n_fields, [rendering] * n_fields))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def train_pattern_net(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                      epochs: int = 12, width: int = 16, seed: int = 0, batch: int = 32):
    """PatternNet with the best validation loss; class-balanced cross-entropy."""
    import torch

    from engine.cells.networks import PatternNet

    torch.manual_seed(seed)
    net = PatternNet(len(PATTERN_CLASSES), width)
    x_tr, y_tr = (torch.from_numpy(a) for a in train)
    x_va, y_va = (torch.from_numpy(a) for a in val)
    counts = torch.bincount(y_tr.ravel(), minlength=len(PATTERN_CLASSES)).float()
    weight = (counts.sum() / (counts + 1)) ** 0.5
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight / weight.mean())

    def batch_loss(idx, generator):
        k = int(torch.randint(0, 4, (1,), generator=generator))
        rotated = net(torch.rot90(x_tr[idx], k, (2, 3)))
        return loss_fn(torch.rot90(rotated, -k, (2, 3)), y_tr[idx])

    return fit_best(net, batch_loss, lambda: loss_fn(net(x_va), y_va), len(x_tr), epochs,
                    3e-3, seed, batch, "pattern net")


def pattern_metrics(net, data: tuple[np.ndarray, np.ndarray]) -> dict:
    """Pixel accuracy and per-class recall inside objects (background pixels excluded)."""
    import torch

    with torch.inference_mode():
        predicted = net(torch.from_numpy(data[0])).argmax(1).numpy()
    truth = data[1]
    inside = truth > 0
    recall = {name: float(np.mean(predicted[truth == i] == i)) if np.any(truth == i) else None
              for i, name in enumerate(PATTERN_CLASSES)}
    return {"pixel_accuracy_in_objects": float(np.mean(predicted[inside] == truth[inside])),
            "recall_by_class": recall, "n_pixels": int(inside.sum())}
