"""The AMES 3-D head on onnxruntime against torch, on simulated z-stacks' cells.

``--fields`` validation z-stacks with out-of-plane clutter (``simulate_stack("val", k,
--clutter)``, as ``python -m offline.cellstruct.train_stack`` validates) go through
``analyze_structure`` with the packaged model; the accepted cells' z-stack patches and
standardized features (what the engine's z-stack path feeds the head) are scored by a copy of
the head directory with ``stack_head.onnx`` (exported here; onnxruntime) and by one without it
(torch): the largest |difference| of every output, and the time per cell of the first call
(building the session or nets) and of later calls (best and median of ``--repeat``).

Usage: ``python bench/cells_stack_onnx.py HEAD_DIR`` (a directory with ``stack_head.json`` +
``stack_head.safetensors``, e.g. ``python -m offline.cellstruct.train_stack --out HEAD_DIR``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from cells_onnx import timed  # bench/cells_onnx.py (the script's folder is on the path)

from engine.cells.analyze import analyze_structure
from engine.cells.features import field_levels
from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.stack_head import CONFIG_FILE, WEIGHTS_FILE, StackHead
from engine.cells.stack_onnx import export_stack_onnx
from engine.cells.zpatches import stack_patches
from offline.cellstruct.stack_data import simulate_stack

log = logging.getLogger("bench.cells_stack_onnx")


def head_inputs(head: StackHead, model: CellsModel, fields: int,
                clutter: float) -> tuple[np.ndarray, np.ndarray]:
    """Patches and features of the accepted cells of ``fields`` validation z-stacks."""
    patches, features = [], []
    geometry = head.geometry
    for k in range(fields):
        field = simulate_stack("val", k, clutter)
        result = analyze_structure(field.image, field.pixel_um, model)
        cells = [row for row in result.rows if row["is_cell"]]
        background, foreground = field_levels(field.image.max(axis=0).astype(np.float32),
                                              result.labels)
        patches.append(stack_patches(field.image.astype(np.float32), result.labels, cells,
                                     field.pixel_um, background, foreground - background,
                                     int(geometry["patch_px"]),
                                     float(geometry["patch_pixel_um"]),
                                     int(geometry["n_patches"])))
        features.append(head.standardized(cells))
    return np.concatenate(patches), np.concatenate(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("head", type=Path)
    parser.add_argument("--fields", type=int, default=6)
    parser.add_argument("--clutter", type=float, default=0.6)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: Path(tmp) / name for name in ("onnxruntime", "torch")}
        for directory in dirs.values():
            directory.mkdir()
            for file in (CONFIG_FILE, WEIGHTS_FILE):
                shutil.copy(args.head / file, directory / file)
        export_stack_onnx(StackHead.load(dirs["onnxruntime"]))
        heads = {name: StackHead.load(directory) for name, directory in dirs.items()}
        patches, features = head_inputs(heads["torch"], CellsModel.load(DEFAULT_CELLS_MODEL),
                                        args.fields, args.clutter)
        n, outs = len(patches), {}
        for name, head in heads.items():
            if head.runtime != name:
                raise SystemExit(f"the head did not run on {name} (see the log above)")
            outs[name], first, later = timed(lambda h=head: h.score(patches, features),
                                             args.repeat)
            log.info("%s: %d cells: first call %.2f ms per cell, then best %.2f ms, median "
                     "%.2f ms per cell", name, n, 1e3 * first / n, 1e3 * min(later) / n,
                     1e3 * float(np.median(later)) / n)
    for key, ref in outs["torch"].items():
        log.info("max |onnxruntime - torch| %s: %.2g", key,
                 float(np.max(np.abs(outs["onnxruntime"][key] - ref))))
    changed = sum(int((outs["onnxruntime"][h].argmax(1) != ref.argmax(1)).sum())
                  for h, ref in outs["torch"].items() if ref.ndim == 2)
    log.info("labels changed: %d of %d cells x 3 heads", changed, n)


if __name__ == "__main__":
    main()
