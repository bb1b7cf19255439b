"""Classical segmentation of candidate cells in a structure image (no training).

Background and its noise are estimated from the darkest part of the smoothed image; pixels
above ``background + k·noise`` and above a fraction of the cytoplasm level form the
foreground, holes (nuclei) are filled, and touching cells are split by a watershed on the
distance transform seeded by its h-maxima (a neck narrower than ``split_h_um`` on each side
separates two cells). Like every segmenter it over-produces candidates (debris, dead cells,
fragments); the curator decides which are cells.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected
from skimage.morphology import h_maxima, remove_small_objects
from skimage.segmentation import watershed


def background_level(plane: np.ndarray) -> tuple[float, float]:
    """Robust background level and noise SD: the mode region of the darkest 30 % of pixels."""
    sample = plane[:: max(1, plane.shape[0] // 512), :: max(1, plane.shape[1] // 512)]
    dark = np.sort(sample.ravel())[: max(int(sample.size * 0.3), 16)]
    level = float(np.median(dark))
    noise = float(1.4826 * np.median(np.abs(dark - level))) * 2.0 + 1e-6  # half-distribution
    return level, noise


def foreground(plane: np.ndarray, pixel_um: float, smooth_um: float = 0.5,
               k_sigma: float = 6.0, object_fraction: float = 0.4) -> np.ndarray:
    """Boolean foreground (holes filled, small specks removed).

    Pixels of the smoothed image above ``background + k_sigma·noise`` form rough objects;
    each keeps the pixels above ``background + object_fraction·(its median − background)``,
    so blurred halos of bright objects are cut where the object's own edge is.
    """
    smoothed = ndimage.gaussian_filter(plane.astype(np.float32), smooth_um / pixel_um)
    level, noise = background_level(smoothed)
    rough = ndimage.binary_fill_holes(smoothed > level + k_sigma * noise)
    components, n = ndimage.label(rough)
    if n == 0:
        return rough
    # per-object median level, on every other pixel (speed; the image is smoothed)
    medians = ndimage.median(smoothed[::2, ::2], components[::2, ::2], np.arange(1, n + 1))
    medians = np.nan_to_num(np.asarray(medians, np.float64), nan=np.inf)
    cut = np.concatenate([[np.inf], level + object_fraction * (np.asarray(medians) - level)])
    mask = smoothed > np.maximum(cut[components], level + k_sigma * noise)
    mask = ndimage.binary_opening(mask, iterations=max(1, int(0.3 / pixel_um)))
    mask = ndimage.binary_fill_holes(mask)
    return remove_small_objects(mask, max_size=int(2.0 / pixel_um ** 2))


def segment_candidates(plane: np.ndarray, pixel_um: float, split_h_um: float = 2.0,
                       min_area_um2: float = 4.0, seed_pixel_um: float = 1.0) -> np.ndarray:
    """Candidate ROIs as an int32 label image (ids 1..n, 0 = background).

    Watershed seeds (h-maxima of the smoothed distance transform) are found on a grid of
    ``seed_pixel_um`` (the distance map is smooth; this keeps a 1,776 × 1,736 field fast).
    """
    mask = foreground(plane, pixel_um)
    step = max(1, int(seed_pixel_um / pixel_um))
    coarse = mask[::step, ::step]
    coarse_um = pixel_um * step
    distance_um = ndimage.distance_transform_edt(coarse) * coarse_um
    distance_um = ndimage.gaussian_filter(distance_um, 1.0 / coarse_um)
    seeds = connected(h_maxima(distance_um, split_h_um) & coarse)
    markers = np.zeros(mask.shape, np.int32)
    markers[::step, ::step][: seeds.shape[0], : seeds.shape[1]] = seeds
    labels = watershed(-ndimage.distance_transform_cdt(mask).astype(np.float32), markers,
                       mask=mask)
    missing = mask & (labels == 0)          # objects too thin to hold a seed
    if missing.any():
        extra = connected(missing)
        labels = np.where(missing, extra + labels.max() * (extra > 0), labels)
    labels = remove_small_objects(labels, max_size=int(min_area_um2 / pixel_um ** 2))
    relabelled, _, _ = _relabel(labels)
    return relabelled.astype(np.int32)


def _relabel(labels: np.ndarray):
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)
