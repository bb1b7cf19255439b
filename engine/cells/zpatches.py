"""Fixed-µm patches of each ROI through every plane of a z-stack (input of the 3-D head).

The same patches as :func:`~engine.cells.patches.cell_patches` (``patch_px`` square at a
fixed ``patch_pixel_um``, centres by farthest-point sampling on the ROI's mask), cut at the
same places from every plane of the stack instead of the maximum projection: channel 0 is
the plane normalized by the field's levels (taken on the maximum projection, as every other
cells input), channel 1 the ROI mask (the same in every plane). A 3-D network then sees what
changes with depth, e.g. clutter in one end plane over a cell whose own pattern fills every
plane (:mod:`acquisition.simulate.structure.clutter`).
"""

from __future__ import annotations

import numpy as np

from .patches import N_PATCHES, PATCH_PIXEL_UM, PATCH_PX, cell_patches


def stack_patches(stack: np.ndarray, labels: np.ndarray, rows: list[dict], pixel_um: float,
                  background: float, scale: float, patch_px: int = PATCH_PX,
                  patch_pixel_um: float = PATCH_PIXEL_UM,
                  n_patches: int = N_PATCHES) -> np.ndarray:
    """``(len(rows), n_patches, 2, Z, patch_px, patch_px)`` float32 patches of every ROI of a
    ``(Z, Y, X)`` stack; ``rows`` need ``cell_id`` and ``bbox`` (as the feature rows)."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"a z-stack must be (Z, Y, X); got shape {stack.shape}")
    if stack.shape[1:] != labels.shape:
        raise ValueError(f"labels shape {labels.shape} does not match the stack's (Y, X) "
                         f"shape {stack.shape[1:]}")
    # the mask, hence the patch centres, is the same in every plane: the same places are cut
    planes = [cell_patches(plane, labels, rows, pixel_um, background, scale, patch_px,
                           patch_pixel_um, n_patches) for plane in stack]
    return np.stack(planes, axis=3)
