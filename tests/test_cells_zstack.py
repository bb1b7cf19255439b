"""The z-stack experiment's sharpest-plane composite (offline/experiments/cells_zstack.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from offline.experiments.cells_zstack import sharpest_planes


def test_each_roi_comes_from_its_own_sharpest_plane_and_the_rest_from_the_projection():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :96]
    discs = (1.0 + np.cos(2 * np.pi * x / 6.0)).astype(np.float32)  # a Z-disc-like stripe
    blurred = ndimage.gaussian_filter(discs, 3.0) * 1.5  # brighter but out of focus
    labels = np.zeros((64, 96), np.int32)
    labels[8:40, 4:44], labels[8:40, 52:92] = 1, 2
    stack = np.stack([blurred, blurred]) + rng.normal(0, 0.01, (2, 64, 96)).astype(np.float32)
    stack[1][labels == 1] = discs[labels == 1]  # ROI 1 sharp in plane 1
    stack[0][labels == 2] = discs[labels == 2]  # ROI 2 sharp in plane 0
    composite = sharpest_planes(stack, labels)
    assert np.array_equal(composite[labels == 1], stack[1][labels == 1])
    assert np.array_equal(composite[labels == 2], stack[0][labels == 2])
    assert np.array_equal(composite[labels == 0], stack.max(axis=0)[labels == 0])
    assert np.array_equal(sharpest_planes(stack[0], labels), stack[0])
