"""Crop patches of true cells follow the segmentation their candidates were cut with."""

from __future__ import annotations

import numpy as np

from offline.cellstruct.dataset import build_candidates
from offline.cellstruct.patch_data import build_patches


def test_patches_follow_the_candidates_segmentation(tmp_path):
    # a larger minimum area drops small candidates of validation field 0 (9 -> 7 candidates,
    # the same 5 true cells): the patches must index the candidates as cut, not as the
    # default segmenter would cut them
    default = build_candidates("val", 1, workers=1)
    pruned = build_candidates("val", 1, workers=1, segmentation={"min_area_um2": 150.0})
    assert len(pruned) < len(default)

    ours = build_patches("val", pruned, 1, tmp_path, patch_px=32, n_patches=2)
    expected = np.flatnonzero(pruned.targets["is_cell"] == 1)
    np.testing.assert_array_equal(ours.index, expected)
    assert ours.patches.shape[:2] == (len(expected), 2)

    theirs = build_patches("val", default, 1, tmp_path, patch_px=32, n_patches=2)
    np.testing.assert_array_equal(theirs.index, np.flatnonzero(default.targets["is_cell"] == 1))
    assert len(list(tmp_path.glob("*.npz"))) == 2  # one cache per segmentation
