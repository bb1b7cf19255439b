"""Split candidates that hold touching cells of different orientation or brightness.

The h-maxima watershed of :mod:`engine.cells.segment` separates two touching cells only
where a neck narrower than its ``split_h_um`` joins them; touching cells with a broad
contact stay merged. Here each candidate is over-segmented by the same watershed with a low
h (``fine_h_um``, a lobe per bulge), and neighbouring lobes of one candidate are joined
again unless they look like two cells:

- their myofibril directions differ by more than ``max_angle_deg`` while both are coherent
  (coherence of the lobe's summed structure tensor, gradients at 0.25 µm, above
  ``min_coherence``; one cell has one dominant direction, a neighbour placed against it
  almost never the same), or
- their brightness above the background (median of the image smoothed at 1 µm) differs by
  more than a factor ``max_brightness_ratio`` (cells differ in marker level and cytoplasm).

Both are measured on each lobe's interior (pixels further than 1 µm from another lobe or the
background, so the edge of the object does not set the direction). Lobes under
``min_lobe_um2`` are always joined. Lobes are joined as connected components of the "same
cell" pairs, so a candidate is only ever split, never merged with another. Deterministic;
thresholds chosen on validation fields (docs/CELLS.md, "Touching cells").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.segmentation import relabel_sequential

DERIVATIVE_UM = 0.25
SMOOTH_UM = 1.0
INTERIOR_UM = 1.0


def split_touching(plane: np.ndarray, labels: np.ndarray, lobes: np.ndarray, pixel_um: float,
                   max_angle_deg: float = 40.0, min_coherence: float = 0.5,
                   max_brightness_ratio: float = 1.5, min_lobe_um2: float = 20.0) -> np.ndarray:
    """``labels`` split along the boundaries of ``lobes`` (an over-segmentation of the same
    foreground) where two neighbouring lobes of one candidate look like two cells."""
    lobes = _nested(labels, lobes)
    n = int(lobes.max())
    if n < 2:
        return labels
    pairs = _adjacent(lobes)
    parent = np.zeros(n + 1, np.int64)
    parent[lobes.ravel()] = labels.ravel()
    pairs = pairs[parent[pairs[:, 0]] == parent[pairs[:, 1]]]
    if len(pairs):
        theta, coherence, level, area = _lobe_measures(plane, lobes, labels, n, pixel_um)
        a, b = pairs[:, 0] - 1, pairs[:, 1] - 1
        angle = np.abs(np.rad2deg(theta[a] - theta[b])) % 180
        angle = np.minimum(angle, 180 - angle)
        ratio = np.maximum(level[a], level[b]) / np.maximum(np.minimum(level[a], level[b]), 1e-6)
        coherent = np.minimum(coherence[a], coherence[b]) > min_coherence
        differ = ((angle > max_angle_deg) & coherent) | (ratio > max_brightness_ratio)
        differ &= np.minimum(area[a], area[b]) >= min_lobe_um2
        pairs = pairs[~differ]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0] - 1, pairs[:, 1] - 1)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    joined = np.where(lobes > 0, component[lobes - 1] + 1, 0)
    return relabel_sequential(joined)[0].astype(labels.dtype)


def _nested(labels: np.ndarray, lobes: np.ndarray) -> np.ndarray:
    """Lobes cut by the candidates' boundaries (every lobe inside one candidate), 1..n."""
    key = labels.astype(np.int64) * (int(lobes.max()) + 1) + lobes
    key[labels == 0] = 0
    _, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64)


def _adjacent(lobes: np.ndarray) -> np.ndarray:
    """Pairs (a, b), a < b, of 4-connected neighbouring lobes."""
    found = []
    for first, second in ((lobes[:, :-1], lobes[:, 1:]), (lobes[:-1, :], lobes[1:, :])):
        edge = (first != second) & (first > 0) & (second > 0)
        found.append(np.stack([np.minimum(first[edge], second[edge]),
                               np.maximum(first[edge], second[edge])], 1))
    pairs = np.concatenate(found)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _lobe_measures(plane, lobes, labels, n, pixel_um):
    """Per lobe: dominant direction (rad), coherence, brightness above background, area."""
    image = plane.astype(np.float32)
    width = 2 * max(1, int(round(INTERIOR_UM / pixel_um))) + 1
    interior = ndimage.minimum_filter(lobes, width) == ndimage.maximum_filter(lobes, width)
    inner = np.where(interior, lobes, 0)
    index = np.arange(1, n + 1)
    sigma = DERIVATIVE_UM / pixel_um
    gy = ndimage.gaussian_filter(image, sigma, order=(1, 0))
    gx = ndimage.gaussian_filter(image, sigma, order=(0, 1))
    sxx, syy, sxy = (np.asarray(ndimage.sum(g, inner, index))
                     for g in (gx * gx, gy * gy, gx * gy))
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    coherence = np.hypot(sxx - syy, 2 * sxy) / (sxx + syy + 1e-12)
    smoothed = ndimage.gaussian_filter(image, SMOOTH_UM / pixel_um)
    background = float(np.median(smoothed[labels == 0])) if (labels == 0).any() else 0.0
    level = np.asarray(ndimage.median(smoothed[::2, ::2], inner[::2, ::2], index), np.float64)
    level = np.nan_to_num(level - background, nan=0.0)
    area = np.bincount(lobes.ravel(), minlength=n + 1)[1:] * pixel_um ** 2
    return theta, coherence, level, area
