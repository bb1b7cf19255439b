"""True cells of simulated z-stacks: 3-D patches, features and the 2-D heads' answers.

Each field of a split (the split's own seeds, as every cells split: training 0+, validation
1,000,000+, test 2,000,000+) is rendered as a ``Z_SLICES``-plane z-stack 0.5 µm apart, with
out-of-plane clutter over a share of its cells when ``clutter > 0``
(``StructureFieldParams.depth_clutter_probability``, :mod:`acquisition.simulate.structure.clutter`),
segmented on its maximum projection and measured there by a cells model (as ``castream
cells`` does). A candidate is a true cell when its IoU with a simulated cardiomyocyte is
≥ 0.5 (:func:`.dataset.match_truth`). For every true cell this keeps:

* ``patches``: :func:`engine.cells.zpatches.stack_patches` (image and mask through the
  planes, fixed µm per pixel), the 3-D head's input;
* ``features``: the model's standardized structure features on the maximum projection;
* the targets (score, sarcomerisation, directionality, source) and the field index;
* ``max_*`` / ``sharp_*``: the model's own (2-D) answers on the maximum projection and,
  when asked, with each ROI taken from its sharpest plane
  (:func:`offline.experiments.cells_zstack.sharpest_planes`'s rule), the baselines.

Nothing is augmented here: augmentation happens only inside training batches.
Cached as ``{split}-{n}-zstack{Z}-clutter{p}-k{K}.npz``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from acquisition.simulate.structure import simulate_structure_field
from engine.cells.analyze import measure_rows
from engine.cells.features import field_levels
from engine.cells.model import CellsModel
from engine.cells.patches import PATCH_PIXEL_UM, PATCH_PX
from engine.cells.schema import CELL_SOURCES, HEADS
from engine.cells.segment import segment_candidates
from engine.cells.zpatches import stack_patches

from .dataset import SPLIT_SEEDS, field_params, match_truth

log = logging.getLogger(__name__)

Z_SLICES = 5
Z_STEP_UM = 0.5
N_PATCHES = 8
TARGET_NAMES = ("structure_score", "sarcomerisation", "directionality", "source_index",
                "field")


@dataclass
class StackCells:
    """The true cells of a split's z-stacks (arrays aligned on the first axis)."""

    patches: np.ndarray                 # (n, K, 2, Z, P, P) float16
    features: np.ndarray                # (n, F) float32, standardized
    targets: dict[str, np.ndarray]      # TARGET_NAMES; classes 1-4, source index 0-2
    baselines: dict[str, np.ndarray]    # "max_<head>" / "sharp_<head>": class indices

    def __len__(self) -> int:
        return len(self.features)


def simulate_stack(split: str, index: int, clutter: float, z_slices: int = Z_SLICES):
    """The ``index``-th field of ``split`` as a z-stack with ``clutter`` (0: none)."""
    if split not in SPLIT_SEEDS or split in ("variant", "select"):
        raise ValueError(f"z-stack split must be train, val or test, not {split!r}")
    if not 0.0 <= clutter <= 1.0:
        raise ValueError(f"clutter is a probability per cell, got {clutter!r}")
    seed = SPLIT_SEEDS[split] + index
    params = field_params(np.random.default_rng([seed, 99]), split, "default",
                          np.random.default_rng([seed, 77]))
    params = replace(params, z_slices=z_slices, z_step_um=Z_STEP_UM,
                     depth_clutter_probability=clutter)
    return simulate_structure_field(params, seed=seed)


def _answers(model: CellsModel, rows: list[dict]) -> dict[str, np.ndarray]:
    scored = model.score(rows)
    return {head: np.argmax(scored[head], axis=1) for head in HEADS}


def field_cells(split: str, index: int, clutter: float, model: CellsModel, sharpest: bool,
                n_patches: int = N_PATCHES) -> dict[str, np.ndarray]:
    """:class:`StackCells` arrays of one field's true cells (``sharp_*`` only if asked)."""
    from offline.experiments.cells_zstack import sharpest_planes

    field = simulate_stack(split, index, clutter)
    plane = field.image.max(axis=0).astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um, **model.config.segmentation)
    levels = field_levels(plane, labels)
    rows = measure_rows(plane, labels, field.pixel_um, model, levels)
    keep, targets = [], {name: [] for name in TARGET_NAMES}
    for k, row in enumerate(rows):
        match = match_truth(labels == row["cell_id"], field)
        if match["is_cell"]:
            keep.append(k)
            truth = match["truth"]
            for name in ("structure_score", "sarcomerisation", "directionality"):
                targets[name].append(truth[name])
            targets["source_index"].append(CELL_SOURCES.index(truth["cell_source"]))
            targets["field"].append(index)
    cells = [rows[k] for k in keep]
    out = {f"t_{n}": np.asarray(v, np.float64) for n, v in targets.items()}
    out["patches"] = stack_patches(field.image.astype(np.float32), labels, cells,
                                   field.pixel_um, levels[0], levels[1] - levels[0], PATCH_PX,
                                   PATCH_PIXEL_UM, n_patches).astype(np.float16)
    out["features"] = model.config.standardized(cells, model.config.structure_features)
    if cells:
        out.update({f"b_max_{h}": v for h, v in _answers(model, cells).items()})
        if sharpest:
            composite = sharpest_planes(field.image, labels)
            sharp_rows = measure_rows(composite, labels, field.pixel_um, model,
                                      field_levels(composite, labels))
            out.update({f"b_sharp_{h}": v for h, v in
                        _answers(model, [sharp_rows[k] for k in keep]).items()})
    return out


def build_stack_cells(split: str, n_fields: int, clutter: float, model: CellsModel,
                      cache_dir: str | Path | None = None, sharpest: bool = False,
                      n_patches: int = N_PATCHES) -> StackCells:
    """The true cells of the first ``n_fields`` z-stacks of ``split`` (cached if asked)."""
    name = f"{split}-{n_fields}-zstack{Z_SLICES}-clutter{clutter:g}-k{n_patches}" + \
        ("-sharp" if sharpest else "") + ".npz"
    cache = Path(cache_dir) / name if cache_dir else None
    if cache is not None and cache.is_file():
        return _unpack(dict(np.load(cache)))
    parts = [field_cells(split, i, clutter, model, sharpest, n_patches)
             for i in tqdm(range(n_fields), desc=f"{split} z-stacks", mininterval=30.0,
                           file=sys.stderr)]
    keys = {k for p in parts for k in p}
    merged = {k: np.concatenate([p[k] for p in parts if k in p]) for k in sorted(keys)}
    result = _unpack(merged)
    log.info("%s: %d z-stacks (clutter %g), %d true cells", split, n_fields, clutter,
             len(result))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **merged)
    return result


def _unpack(data: dict[str, np.ndarray]) -> StackCells:
    return StackCells(data["patches"], data["features"].astype(np.float32),
                      {k[2:]: v for k, v in data.items() if k.startswith("t_")},
                      {k[2:]: v for k, v in data.items() if k.startswith("b_")})
