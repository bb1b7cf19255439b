"""Fixed-µm patches of the true cells of a split's fields, aligned with its candidates.

The candidate caches (:func:`.dataset.build_candidates`) hold whole-cell crops at ≈ 2 µm/px,
too coarse for Z-discs. This re-simulates the same fields (deterministic by seed), segments
them with the same segmenter (so the same candidates in the same order; checked against
the cached candidates field by field) and cuts :func:`engine.cells.patches.cell_patches` of
the true cells, with the simulator's realized myofibril spread (``angle_spread_deg``) as an
auxiliary target. Cached as ``{split}[-rendering]-{n}-patches-{px}px-{um}um-k{K}.npz``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.cells.features import field_levels, roi_features
from engine.cells.patches import PATCH_PIXEL_UM, PATCH_PX, cell_patches, with_extra_channels
from engine.cells.segment import segment_candidates

from .dataset import Candidates, match_truth, segmentation_tag, simulate

log = logging.getLogger(__name__)

#: patches cut per cell (training draws a model's ``n_patches`` of them at random; evaluation
#: and the engine use the first ``n_patches``, the farthest-point choice)
EXTRACTED_PATCHES = 16


@dataclass
class CellPatches:
    """Patches of the true cells of a split: ``patches[j]`` belongs to candidate
    ``index[j]`` of the split's :class:`Candidates`."""

    patches: np.ndarray      # (n_cells, K, 2, P, P) float16
    index: np.ndarray        # (n_cells,) candidate index
    spread_deg: np.ndarray   # (n_cells,) realized myofibril spread of the matched cell


def field_patches(split: str, index: int, rendering: str, patch_px: int, patch_pixel_um: float,
                  n_patches: int, segmentation: dict | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Patches, within-field candidate positions and spreads of one field's true cells, and
    its number of candidates (``segmentation``: the segmenter's keyword arguments)."""
    field = simulate(split, index, rendering)
    plane = (field.image.max(axis=0) if field.image.ndim == 3 else field.image)
    plane = plane.astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um, **(segmentation or {}))
    rows = roi_features(plane, labels, field.pixel_um, structure=False)
    keep, spreads = [], []
    for k, row in enumerate(rows):
        match = match_truth(labels == row["cell_id"], field)
        if match["is_cell"]:
            keep.append(k)
            spreads.append(float(match["truth"]["angle_spread_deg"]))
    background, foreground = field_levels(plane, labels)
    patches = cell_patches(plane, labels, [rows[k] for k in keep], field.pixel_um, background,
                           foreground - background, patch_px, patch_pixel_um, n_patches)
    return patches.astype(np.float16), np.array(keep, int), np.array(spreads), len(rows)


def build_patches(split: str, cands: Candidates, n_fields: int, cache_dir: str | Path,
                  rendering: str = "default", patch_px: int = PATCH_PX,
                  patch_pixel_um: float = PATCH_PIXEL_UM,
                  n_patches: int = EXTRACTED_PATCHES) -> CellPatches:
    """Patches of the true cells of ``cands`` (the first ``n_fields`` fields of ``split``, cut
    with the segmentation settings the candidates were cut with)."""
    rendered = "" if rendering == "default" else f"-{rendering}"
    cache = Path(cache_dir) / (f"{split}{rendered}-{n_fields}{segmentation_tag(cands.segmentation)}"
                               f"-patches-{patch_px}px-{patch_pixel_um:g}um-k{n_patches}.npz")
    if cache.is_file():
        data = np.load(cache)
        return CellPatches(data["patches"], data["index"], data["spread_deg"])
    fields = cands.targets["field"].astype(int)
    parts, indices, spreads = [], [], []
    for i in tqdm(range(n_fields), desc=f"{split} patches", mininterval=30.0, file=sys.stderr):
        patches, keep, spread, n_candidates = field_patches(split, i, rendering, patch_px,
                                                            patch_pixel_um, n_patches,
                                                            cands.segmentation)
        where = np.flatnonzero(fields == i)
        expected = np.flatnonzero(cands.targets["is_cell"][where] == 1)
        if len(where) != n_candidates or not np.array_equal(expected, keep):
            raise RuntimeError(f"{split} field {i}: segmentation differs from the cached "
                               f"candidates ({n_candidates} vs {len(where)})")
        parts.append(patches)
        indices.append(where[keep])
        spreads.append(spread)
    result = CellPatches(np.concatenate(parts), np.concatenate(indices), np.concatenate(spreads))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, patches=result.patches, index=result.index, spread_deg=result.spread_deg)
    log.info("%s: patches of %d true cells, %s", split, len(result.index),
             result.patches.shape[1:])
    return result


def model_patches(split: str, cands: Candidates, n_fields: int, cache_dir: str | Path,
                  geometry: dict, rendering: str = "default") -> np.ndarray:
    """What a crop-CNN model with ``geometry`` (``config.structure["patches"]``) scores for
    the true cells of ``cands``: its first ``n_patches`` patches with its extra channels."""
    pixel_um = float(geometry["patch_pixel_um"])
    patches = build_patches(split, cands, n_fields, cache_dir, rendering,
                            int(geometry["patch_px"]), pixel_um).patches
    return with_extra_channels(patches[:, : int(geometry["n_patches"])],
                               geometry.get("extra", []), pixel_um)
