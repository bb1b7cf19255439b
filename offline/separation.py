"""Pixel weights that teach a network where neighbouring events part.

A segmentation network with little capacity joins two close events (two sparks of a pair, a
spark and its neighbour) into one region when the background between them is a few pixels
among millions. Ronneberger et al. (2015, U-Net, eq. 2) weight every background pixel by how
tightly it is squeezed between two objects::

    w(x) = 1 + w0 · exp(−(d1(x) + d2(x))² / (2 σ²))

with ``d1`` and ``d2`` the distances to the nearest and to the second-nearest object. Event
pixels keep weight 1. Distances are in pixels of the recording's own grid (for a line-scan a
pixel in X and a line in T count alike).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: a pixel farther than this many σ from an object gets no extra weight from it (exp(−4.5))
REACH_SIGMAS = 3.0


def check_parameters(w0: float, sigma_px: float) -> None:
    """Raise ``ValueError`` unless ``w0 >= 0`` and ``sigma_px > 0``."""
    if not (w0 >= 0 and sigma_px > 0):
        raise ValueError(f"separation needs w0 >= 0 and sigma_px > 0, got {w0} and {sigma_px}")


def separation_weights(instance_mask: np.ndarray, w0: float, sigma_px: float) -> np.ndarray:
    """Per-pixel weights (float32, shaped like ``instance_mask``; module docstring).

    Parameters
    ----------
    instance_mask : ndarray of int
        0 for background, one id per event.
    w0, sigma_px : float
        Ronneberger et al.'s weight and width (their defaults: 10 and 5 pixels).
    """
    check_parameters(w0, sigma_px)
    instances = np.asarray(instance_mask)
    d1 = np.full(instances.shape, np.inf, np.float32)
    d2 = np.full(instances.shape, np.inf, np.float32)
    reach = int(np.ceil(REACH_SIGMAS * sigma_px))
    for index, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(0, s.start - reach), min(n, s.stop + reach))
                      for s, n in zip(box, instances.shape, strict=True))
        distance = ndimage.distance_transform_edt(instances[grown] != index).astype(np.float32)
        near, second = d1[grown], d2[grown]
        second[:] = np.minimum(second, np.maximum(near, distance))
        near[:] = np.minimum(near, distance)
    squeezed = np.exp(-((d1 + d2) ** 2) / (2.0 * sigma_px ** 2))
    weights = 1.0 + np.float32(w0) * np.where(instances == 0, squeezed, 0.0)
    return weights.astype(np.float32)
