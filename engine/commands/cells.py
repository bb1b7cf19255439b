"""``castream cells INPUT --out DIR [--labels ROIS.tif] [--pixel-um P] [--model DIR]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = ("find, curate and score cardiomyocytes in a structure image (Z-disc marker, 2-D or "
        "z-stack): cells.csv + cells.tif + summary.json")

log = logging.getLogger("castream.cells")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT",
                        help="structure image TIFF: (Y, X) or a z-stack (Z, Y, X)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--labels", type=Path,
                        help="label TIFF of your own ROIs (Cellpose, suite2p, by hand): skip "
                             "segmentation, curate and score exactly these ids")
    parser.add_argument("--pixel-um", type=float, help="pixel size in µm (overrides metadata)")
    parser.add_argument("--model", type=Path, help="cells model directory (default: packaged)")
    parser.add_argument("--no-overview", action="store_true", help="do not write overview.png")


def run(args: argparse.Namespace) -> int:
    from engine.cells.analyze import analyze_structure, structure_plane
    from engine.cells.io import read_labels, read_structure_image, write_outputs
    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel

    if args.pixel_um is not None and not args.pixel_um > 0:
        raise ValueError(f"--pixel-um must be positive, got {args.pixel_um}")
    image, pixel_um, source = read_structure_image(args.input, args.pixel_um)
    labels = read_labels(args.labels) if args.labels else None
    model = CellsModel.load(args.model or DEFAULT_CELLS_MODEL)
    result = analyze_structure(image, pixel_um, model, labels)
    extra = {"input": str(args.input), "input_shape": list(image.shape),
             "calibration_from": source,
             "labels_file": str(args.labels) if args.labels else None}
    plane = None if args.no_overview else structure_plane(image)
    paths = write_outputs(args.out, result, plane, extra)
    summary = result.summary
    log.info("%s: %d candidates, %d cells, %d rejected (pixel %.4g µm from %s) in %.2f s -> %s",
             args.input.name, summary["n_candidates"], summary["n_cells"],
             summary["n_rejected"], pixel_um, source, summary["elapsed_s"], paths["cells"])
    for warning in summary["quality"]["warnings"]:
        log.warning("%s", warning)
    return 0
