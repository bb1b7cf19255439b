"""Classical segmentation of candidate cells in a structure image (no training).

Background and its noise are estimated from the darkest part of the smoothed image; pixels
above ``background + k·noise`` and above a fraction of the cytoplasm level form the
foreground, holes (nuclei) are filled, and touching cells are split by a watershed on the
distance transform seeded by its h-maxima (a neck narrower than ``split_h_um`` on each side
separates two cells). Like every segmenter it over-produces candidates (debris, dead cells,
fragments); the curator decides which are cells.

Touching cells with a broad contact have no neck. With ``nuclei_split`` (a model's
``segmentation`` settings) a candidate holding two or more nuclei is split between them
(:func:`split_by_nuclei`): a nucleus shows in a Z-disc marker image as a dark hole of
15–80 µm² (an ellipse of about 7–10 × 5–7 µm in the simulator, :mod:`acquisition.simulate.structure`)
enclosed by the cell's own signal. Off by default, and not for adult myocytes: most adult
rodent ventricular myocytes have two nuclei (78 % in rat; 10–25 % in human), and the split
would cut them in two; on simulated fields (one nucleus per cell) it did not raise detection
F1 beyond noise (docs/CELLS.md, "Touching cells split between their nuclei").
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
                       min_area_um2: float = 4.0, seed_pixel_um: float = 1.0,
                       nuclei_split: bool = False) -> np.ndarray:
    """Candidate ROIs as an int32 label image (ids 1..n, 0 = background).

    Watershed seeds (h-maxima of the smoothed distance transform) are found on a grid of
    ``seed_pixel_um`` (the distance map is smooth; this keeps a 1,776 × 1,736 field fast);
    ``nuclei_split`` then splits candidates holding several nuclei (:func:`split_by_nuclei`).
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
    if nuclei_split:
        labels = split_by_nuclei(plane, labels, pixel_um)
    relabelled, _, _ = _relabel(labels)
    return relabelled.astype(np.int32)


#: a nucleus is darker than this fraction of the way from the background to its candidate's
#: ``NUCLEUS_REFERENCE_PERCENTILE`` level (smoothed over ``NUCLEUS_SMOOTH_UM``): it holds no
#: marker, so it is darker than even the cell's plain cytoplasm
NUCLEUS_DARK_FRACTION = 0.5
NUCLEUS_REFERENCE_PERCENTILE = 50.0
#: and it is compact (an ellipse): area over its convex hull's area
NUCLEUS_SOLIDITY = 0.85
NUCLEUS_AREA_UM2 = (15.0, 80.0)
NUCLEUS_SMOOTH_UM = 0.5
#: a nucleus's surroundings (a ring ``NUCLEUS_RING_UM`` wide) lie at least this much inside
#: the candidate: a dark bay at the candidate's edge is not a nucleus
NUCLEUS_ENCLOSED = 0.9
NUCLEUS_RING_UM = 0.6
#: no part of a split candidate is smaller than this (else the candidate stays whole)
MIN_PART_UM2 = 40.0


def split_by_nuclei(plane: np.ndarray, labels: np.ndarray, pixel_um: float) -> np.ndarray:
    """``labels`` with every candidate that holds two or more nuclei split between them
    (each pixel to the nearest nucleus inside the candidate; new ids after the existing
    ones). A candidate whose split would leave a part under :data:`MIN_PART_UM2` stays whole."""
    smoothed = ndimage.gaussian_filter(plane.astype(np.float32), NUCLEUS_SMOOTH_UM / pixel_um)
    level, _ = background_level(smoothed)
    out = labels.copy()
    next_id = int(labels.max()) + 1
    opening = max(1, int(round(0.5 / pixel_um)))
    ring = max(1, int(round(NUCLEUS_RING_UM / pixel_um)))
    lo, hi = (a / pixel_um ** 2 for a in NUCLEUS_AREA_UM2)
    min_part = MIN_PART_UM2 / pixel_um ** 2
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        if mask.sum() < 2 * min_part:
            continue
        nuclei = _nuclei(smoothed[box], mask, level, opening, ring, lo, hi)
        if nuclei.max() < 2:
            continue
        parts = watershed(ndimage.distance_transform_edt(nuclei == 0), nuclei, mask=mask)
        sizes = np.bincount(parts.ravel(), minlength=int(nuclei.max()) + 1)[1:]
        if sizes.min() < min_part:
            continue
        view = out[box]
        for part in range(2, int(nuclei.max()) + 1):
            view[parts == part] = next_id
            next_id += 1
    return out


def _nuclei(smoothed: np.ndarray, mask: np.ndarray, level: float, opening: int, ring: int,
            lo: float, hi: float) -> np.ndarray:
    """Labelled nucleus-like holes of one candidate (ids 1..n): dark, of a nucleus's area,
    enclosed by the candidate."""
    reference = float(np.percentile(smoothed[mask], NUCLEUS_REFERENCE_PERCENTILE))
    dark = mask & (smoothed < level + NUCLEUS_DARK_FRACTION * (reference - level))
    dark = ndimage.binary_opening(dark, iterations=opening)
    components, _ = ndimage.label(dark)
    areas = np.bincount(components.ravel())
    inside = np.pad(mask, ring)  # the ring may reach past the candidate's box
    nuclei = np.zeros(mask.shape, np.int32)
    found = 0
    for k in np.flatnonzero((areas >= lo) & (areas <= hi)):
        if k == 0:
            continue
        hole = components == k
        one = np.pad(hole, ring)
        surround = ndimage.binary_dilation(one, iterations=ring) & ~one
        if (surround & inside).sum() >= NUCLEUS_ENCLOSED * surround.sum() and (
                NUCLEUS_SOLIDITY <= 0 or _solidity(hole) >= NUCLEUS_SOLIDITY):
            found += 1
            nuclei[hole] = found
    return nuclei


def _solidity(region: np.ndarray) -> float:
    from skimage.morphology import convex_hull_image

    return float(region.sum() / max(convex_hull_image(region).sum(), 1))


def _relabel(labels: np.ndarray):
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)
