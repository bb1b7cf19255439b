"""Fixed-µm patches inside each ROI for the crop CNN (SarcNet-style scorer).

The curator's whole-cell crops (:mod:`.crops`) squeeze a 100-µm cell into 64 px (≈ 2 µm/px):
no Z-disc survives. The structure CNN instead sees ``n_patches`` square patches of
``patch_px`` × ``patch_px`` pixels resampled to a fixed ``patch_pixel_um`` (default 0.2 µm/px,
so a 1.9-µm sarcomere spans ≈ 9.5 px and fields at 0.1–0.2 µm/px are at most halved), centred
on ROI pixels chosen by farthest-point sampling among those at least a third of a patch from
the ROI's edge (or 60 % of the deepest pixel's depth in thin ROIs), so that most of each
patch is cell: the first centre nearest the ROI's centroid, each next one the pixel farthest
from those chosen. Deterministic, and the first k of n centres are the k-centre choice, so a
model may use fewer patches than were extracted.
Channel 0 is the image normalized like every cells network's input
(:func:`~engine.cells.patterns.normalized`), channel 1 the ROI mask; a model may ask for
extra channels computed from these two (:func:`with_extra_channels`, ``patches["extra"]``):
``"band"``, the image band-passed on the sarcomere-scale ring of
:func:`~engine.cells.measure.orientation_spread` (:func:`~engine.cells.measure.sarcomere_band`,
tapered to the patch's mask), where the Z-disc rows and their direction stand out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .measure import sarcomere_band

#: defaults of a crop-CNN model's ``config.structure["patches"]``
PATCH_PX = 48
PATCH_PIXEL_UM = 0.2
N_PATCHES = 8
#: extra channels :func:`with_extra_channels` computes, and their fixed gain (brings the
#: band-passed image to about unit SD on cell patches)
EXTRA_CHANNELS = {"band": 2.5}
#: ROI pixels considered as patch centres: every STEP-th in y and x (of the resampled ROI)
CENTRE_STEP_PX = 3


def cell_patches(plane: np.ndarray, labels: np.ndarray, rows: list[dict], pixel_um: float,
                 background: float, scale: float, patch_px: int = PATCH_PX,
                 patch_pixel_um: float = PATCH_PIXEL_UM,
                 n_patches: int = N_PATCHES) -> np.ndarray:
    """``(len(rows), n_patches, 2, patch_px, patch_px)`` float32 patches of every ROI."""
    out = np.zeros((len(rows), n_patches, 2, patch_px, patch_px), np.float32)
    for i, row in enumerate(rows):
        image, mask = _resampled_window(plane, labels, row, pixel_um, background, scale,
                                        patch_px, patch_pixel_um)
        half = patch_px // 2
        for k, (cy, cx) in enumerate(patch_centres(mask, n_patches, patch_px)):
            out[i, k, 0] = image[cy - half: cy - half + patch_px, cx - half: cx - half + patch_px]
            out[i, k, 1] = mask[cy - half: cy - half + patch_px, cx - half: cx - half + patch_px]
    return out


def _resampled_window(plane, labels, row, pixel_um, background, scale, patch_px,
                      patch_pixel_um) -> tuple[np.ndarray, np.ndarray]:
    """The ROI's bounding box padded by a patch side, normalized, at ``patch_pixel_um``."""
    r0, c0, r1, c1 = row["bbox"]
    pad = int(np.ceil(patch_px * patch_pixel_um / pixel_um / 2)) + 2
    ys = slice(max(r0 - pad, 0), min(r1 + pad, plane.shape[0]))
    xs = slice(max(c0 - pad, 0), min(c1 + pad, plane.shape[1]))
    image = (plane[ys, xs].astype(np.float32) - background) / scale
    mask = (labels[ys, xs] == row["cell_id"]).astype(np.float32)
    zoom = pixel_um / patch_pixel_um
    if abs(zoom - 1) > 1e-3:
        if zoom < 1:  # anti-aliasing before shrinking
            image = ndimage.gaussian_filter(image, sigma=(1 / zoom - 1) / 2)
        image = ndimage.zoom(image, zoom, order=1)
        mask = ndimage.zoom(mask, zoom, order=1)
    half = patch_px // 2 + 1
    image = np.pad(image, half, constant_values=0.0)   # background is 0 after normalizing
    mask = np.pad(mask, half, constant_values=0.0)
    return image, mask


def patch_centres(mask: np.ndarray, n_patches: int, patch_px: int = PATCH_PX) -> list[tuple[int, int]]:
    """``n_patches`` centres on ``mask > 0.5`` by farthest-point sampling (repeated cyclically
    when the ROI has fewer candidate pixels than patches)."""
    depth = ndimage.distance_transform_edt(mask > 0.5)[::CENTRE_STEP_PX, ::CENTRE_STEP_PX]
    ys, xs = np.nonzero(depth >= min(patch_px / 3, 0.6 * depth.max()) - 1e-6)
    points = np.stack([ys, xs], axis=1) * CENTRE_STEP_PX
    if len(points) == 0:
        return [(mask.shape[0] // 2, mask.shape[1] // 2)] * n_patches
    centroid = points.mean(axis=0)
    chosen = [int(np.argmin(((points - centroid) ** 2).sum(axis=1)))]
    distance = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < min(n_patches, len(points)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, ((points - points[chosen[-1]]) ** 2).sum(axis=1))
    centres = [tuple(int(v) for v in points[c]) for c in chosen]
    return [centres[k % len(centres)] for k in range(n_patches)]


def with_extra_channels(patches: np.ndarray, extra: list[str] | tuple[str, ...],
                        patch_pixel_um: float = PATCH_PIXEL_UM) -> np.ndarray:
    """``patches`` ``(n, K, 2, P, P)`` (image, mask) with the channels named in ``extra``
    (keys of :data:`EXTRA_CHANNELS`) appended, computed patch by patch; the input itself when
    ``extra`` is empty."""
    unknown = [name for name in extra if name not in EXTRA_CHANNELS]
    if unknown:
        raise ValueError(f"unknown patch channels {unknown} (known: {list(EXTRA_CHANNELS)})")
    if not extra:
        return patches
    out = np.zeros(patches.shape[:2] + (2 + len(extra),) + patches.shape[3:], patches.dtype)
    out[:, :, :2] = patches[:, :, :2]
    for i, k in np.ndindex(*patches.shape[:2]):
        image = patches[i, k, 0].astype(np.float32)
        mask = patches[i, k, 1].astype(np.float32)
        for j, name in enumerate(extra):
            if name == "band":
                out[i, k, 2 + j] = EXTRA_CHANNELS[name] * sarcomere_band(image, mask,
                                                                         patch_pixel_um)
    return out
