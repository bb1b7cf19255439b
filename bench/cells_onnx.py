"""The cells model's networks on onnxruntime against torch, on a structure field's ROIs.

The field is segmented and measured as ``castream cells`` does; then ``curate`` and ``score``
of the packaged model run with its ONNX graphs (onnxruntime) and with a copy of its directory
without them (torch): the largest |difference| of every output, and the time of the first
call (building sessions or nets) and of later calls (best and median of ``--repeat``).

Usage: ``python bench/cells_onnx.py FIELD.tif`` (a field from ``python bench/cells_field.py
--write FIELD.tif``); ``--model DIR`` another cells model directory with its graphs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.cells.analyze import measure_candidates, structure_plane
from engine.cells.io import read_structure_image
from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.onnx_runtime import GRAPHS
from engine.cells.segment import segment_candidates

log = logging.getLogger("bench.cells_onnx")


def timed(model: CellsModel, crops: np.ndarray, rows: list[dict], repeat: int):
    """Outputs, first-call time and later times (s) of curate + score."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        out = {"is_cell_proba": model.curate(crops, rows), **model.score(rows)}
        times.append(time.perf_counter() - started)
    return out, times[0], times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("field", type=Path)
    parser.add_argument("--model", type=Path, default=DEFAULT_CELLS_MODEL)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    image, pixel_um, _ = read_structure_image(args.field)
    with tempfile.TemporaryDirectory() as tmp:
        copy = shutil.copytree(args.model, Path(tmp) / "torch", ignore=shutil.ignore_patterns(
            *GRAPHS.values()))
        models = {"onnxruntime": CellsModel.load(args.model), "torch": CellsModel.load(copy)}
        plane = structure_plane(image)
        labels = segment_candidates(plane, pixel_um, **models["torch"].config.segmentation)
        rows, crops = measure_candidates(plane, labels, pixel_um, models["torch"])
        outs = {}
        for name, model in models.items():
            outs[name], first, later = timed(model, crops, rows, args.repeat)
            if model.runtime != name:
                raise SystemExit(f"{args.model} did not run on {name} (see the log above)")
            log.info("%s: curate + score of %d ROIs: first call %.1f ms, then best %.2f ms, "
                     "median %.2f ms", name, len(rows), 1e3 * first, 1e3 * min(later),
                     1e3 * float(np.median(later)))
    for key, ref in outs["torch"].items():
        log.info("max |onnxruntime - torch| %s: %.2g", key,
                 float(np.max(np.abs(outs["onnxruntime"][key] - ref))))


if __name__ == "__main__":
    main()
