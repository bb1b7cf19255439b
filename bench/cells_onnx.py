"""The cells model's networks on onnxruntime against torch, on a structure field's ROIs.

The field is segmented and measured as ``castream cells`` does; then the pattern net over the
normalized field (``pattern_probabilities``) and ``curate`` and ``score`` of its ROIs run with
the packaged model's ONNX graphs (onnxruntime) and with a copy of its directory without them
(torch): the largest |difference| of every output (and how many pixels change pattern class),
and the time of the first call (building sessions or nets) and of later calls (best and
median of ``--repeat``).

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
from engine.cells.features import field_levels
from engine.cells.io import read_structure_image
from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.onnx_runtime import GRAPHS
from engine.cells.patterns import normalized
from engine.cells.segment import segment_candidates

log = logging.getLogger("bench.cells_onnx")


def timed(call, repeat: int):
    """Output, first-call time and later times (s) of ``call()``."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - started)
    return out, times[0], times[1:]


def steps(model: CellsModel, image: np.ndarray, crops: np.ndarray, rows: list[dict]) -> dict:
    """The timed calls of one runtime by what they run."""
    return {"pattern net over the field": lambda: {"pattern_proba":
                                                     model.pattern_probabilities(image)},
            f"curate + score of {len(rows)} ROIs": lambda: {
                "is_cell_proba": model.curate(crops, rows), **model.score(rows)}}


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
        background, foreground = field_levels(plane, labels)
        image = normalized(plane, background, foreground - background)
        outs = {name: {} for name in models}
        for name, model in models.items():
            for step, call in steps(model, image, crops, rows).items():
                out, first, later = timed(call, args.repeat)
                outs[name].update(out)
                log.info("%s: %s: first call %.1f ms, then best %.2f ms, median %.2f ms", name,
                         step, 1e3 * first, 1e3 * min(later), 1e3 * float(np.median(later)))
            if model.runtime != name:
                raise SystemExit(f"{args.model} did not run on {name} (see the log above)")
    for key, ref in outs["torch"].items():
        log.info("max |onnxruntime - torch| %s: %.2g", key,
                 float(np.max(np.abs(outs["onnxruntime"][key] - ref))))
    classes = {name: out["pattern_proba"].argmax(0) for name, out in outs.items()}
    changed = classes["onnxruntime"] != classes["torch"]
    log.info("pattern class changed at %d of %d grid pixels", changed.sum(), changed.size)


if __name__ == "__main__":
    main()
