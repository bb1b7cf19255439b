"""Fixed-size crops centred on each ROI (DeGuire et al.: 64×64 around the candidate mask).

Channel 0 is the image normalized by the field's background and candidate level, channel 1
the ROI's mask. The square side is ``scale`` × the ROI's larger bounding-box side (at least
``min_side_um``), resampled with anti-aliasing, so whole cells of any size fit the crop.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

CROP_PX = 64


def roi_crops(plane: np.ndarray, labels: np.ndarray, rows: list[dict], pixel_um: float,
              background: float, scale_level: float, crop_px: int = CROP_PX,
              scale: float = 1.25, min_side_um: float = 12.0) -> np.ndarray:
    """``(n, 2, crop_px, crop_px)`` float32 crops for ``rows`` (from ``roi_features``)."""
    out = np.zeros((len(rows), 2, crop_px, crop_px), np.float32)
    for i, row in enumerate(rows):
        r0, c0, r1, c1 = row["bbox"]
        side = int(max(scale * max(r1 - r0, c1 - c0), min_side_um / pixel_um, 8))
        cy, cx = int(round((r0 + r1) / 2)), int(round((c0 + c1) / 2))
        image = _window(plane, cy, cx, side, background)
        mask = _window(labels, cy, cx, side, 0) == row["cell_id"]
        out[i, 0] = resize((image - background) / scale_level, (crop_px, crop_px),
                           anti_aliasing=True, preserve_range=True)
        out[i, 1] = resize(mask.astype(np.float32), (crop_px, crop_px), anti_aliasing=True,
                           preserve_range=True)
    return out


def _window(array: np.ndarray, cy: int, cx: int, side: int, fill: float) -> np.ndarray:
    """``side × side`` window centred at (cy, cx), padded with ``fill`` outside the image."""
    half = side // 2
    y0, x0 = cy - half, cx - half
    out = np.full((side, side), fill, dtype=np.float32)
    ys = slice(max(y0, 0), min(y0 + side, array.shape[0]))
    xs = slice(max(x0, 0), min(x0 + side, array.shape[1]))
    out[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = array[ys, xs]
    return out
