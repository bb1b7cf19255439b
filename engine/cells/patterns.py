"""Area fractions of six local patterns per ROI (Gerbin et al. 2021's patch classes:
background, diffuse/other, fibres, disorganized puncta, organized puncta, organized Z-discs),
from the cells model's :class:`~engine.cells.networks.PatternNet` run once over the field at
half resolution, and the orientation order over the oriented pixels only (a directionality
cue that puncta and diffuse cytoplasm do not dilute)."""

from __future__ import annotations

import numpy as np

PATTERN_CLASSES: tuple[str, ...] = ("background", "diffuse", "fibres", "disorganized_puncta",
                                    "organized_puncta", "zdiscs")
#: pattern fractions, then the orientation order over oriented pixels only (Z-discs, fibres,
#: organized puncta: what a rater judges directionality on; NaN under 20 such pixels)
PATTERN_FEATURES: tuple[str, ...] = (*(f"frac_{name}" for name in PATTERN_CLASSES),
                                     "oriented_order")
ORIENTED_CLASSES = (2, 4, 5)
FIBRES = 2
#: the net's output grid: one value per STRIDE × STRIDE input pixels
STRIDE = 2


def normalized(plane: np.ndarray, background: float, scale: float) -> np.ndarray:
    """What every cells network sees: (image − background) / (candidate level − background)."""
    return ((plane - background) / scale).astype(np.float32)


def pattern_classes(net, image: np.ndarray) -> np.ndarray:
    """Class index per output pixel (uint8, shape ⌈Y/2⌉ × ⌈X/2⌉) of a normalized image."""
    import torch

    with torch.inference_mode():
        logits = net(torch.from_numpy(np.ascontiguousarray(image))[None, None])
    return logits[0].argmax(0).numpy().astype(np.uint8)


def oriented_order(plane: np.ndarray, labels: np.ndarray, classes: np.ndarray, row: dict,
                   pixel_um: float) -> float:
    """Orientation order parameter of one ROI over its oriented pixels only, fibre pixels
    turned by 90° (their gradient runs across the myofibril, a Z-disc's along it)."""
    from .measure import orientation_order

    r0, c0, r1, c1 = row["bbox"]
    half = classes[r0 // STRIDE: (r1 + STRIDE - 1) // STRIDE,
                   c0 // STRIDE: (c1 + STRIDE - 1) // STRIDE]
    full = np.repeat(np.repeat(half, STRIDE, axis=0), STRIDE, axis=1)
    full = full[r0 % STRIDE: r0 % STRIDE + r1 - r0, c0 % STRIDE: c0 % STRIDE + c1 - c0]
    mask = labels[r0:r1, c0:c1] == row["cell_id"]
    if full.shape != mask.shape:  # the net's grid ends short of an odd-sized border
        full = np.pad(full, [(0, m - f) for m, f in zip(mask.shape, full.shape, strict=True)],
                      mode="edge")
    mask &= np.isin(full, ORIENTED_CLASSES)
    if mask.sum() < 20:
        return float("nan")
    return orientation_order(plane[r0:r1, c0:c1].astype(np.float32), mask, pixel_um,
                             across=full == FIBRES)[0]


def pattern_fractions(classes: np.ndarray, labels: np.ndarray,
                      ids: list[int]) -> dict[int, dict[str, float]]:
    """Fraction of each class among the output pixels of each ROI id."""
    grid = labels[::STRIDE, ::STRIDE][: classes.shape[0], : classes.shape[1]]
    n_classes = len(PATTERN_CLASSES)
    counts = np.zeros((int(labels.max()) + 1, n_classes))
    np.add.at(counts, (grid.ravel(), classes[: grid.shape[0], : grid.shape[1]].ravel()), 1)
    out = {}
    for roi in ids:
        total = counts[roi].sum()
        values = counts[roi] / total if total else np.full(n_classes, np.nan)
        out[roi] = dict(zip(PATTERN_FEATURES[:n_classes], values.tolist(), strict=True))
    return out
