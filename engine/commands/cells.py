"""``castream cells INPUT --out DIR [--labels ROIS.tif] [--pixel-um P] [--model DIR]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = ("find, curate and score cardiomyocytes in a structure image (Z-disc marker, 2-D or "
        "z-stack): cells.csv + cells.tif + summary.json")

log = logging.getLogger("castream.cells")

#: what ``castream cells`` writes into ``--out`` (``summary.json`` and ``overview.png`` are also
#: names ``castream analyze`` writes: one folder cannot hold both)
RESULT_FILES = ("cells.csv", "cells.tif", "summary.json", "overview.png", "explain")


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
    parser.add_argument("--force", action="store_true",
                        help="replace the results of an earlier run in --out (default: refuse)")
    parser.add_argument("--explain", action="store_true",
                        help="also write an occlusion map of each accepted cell's score: "
                             "explain/cell_<id>.png and explain/maps.npz (slower: seconds per "
                             "cell; docs/CELLS.md 'Explanation overlay')")
    parser.add_argument("--explain-squares", type=int, default=None, metavar="N",
                        help="--explain: at most N occluding squares per cell (default 128; "
                             "larger cells get a coarser grid)")
    parser.add_argument("--explain-patch-um", type=float, default=None, metavar="UM",
                        help="--explain: side of the occluding square in µm (default 2.5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from engine.cells.analyze import analyze_structure, structure_plane
    from engine.cells.io import read_labels, read_structure_image, write_outputs
    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
    from engine.staging import refuse_existing

    if not args.force:
        refuse_existing(args.out, RESULT_FILES, "an earlier run")
    if args.pixel_um is not None and not args.pixel_um > 0:
        raise ValueError(f"--pixel-um must be positive, got {args.pixel_um}")
    explain = _explain_options(args)
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
    if explain is not None:
        _write_explanations(args, image, result, model, explain)
    return 0


def _explain_options(args: argparse.Namespace) -> dict | None:
    """``explain_field`` keyword arguments, or None without ``--explain``; one-line errors."""
    given = {"max_occlusions": args.explain_squares, "patch_um": args.explain_patch_um}
    if not args.explain:
        if any(value is not None for value in given.values()):
            raise ValueError("--explain-squares and --explain-patch-um need --explain")
        return None
    if args.explain_squares is not None and args.explain_squares < 1:
        raise ValueError(f"--explain-squares must be at least 1, got {args.explain_squares}")
    if args.explain_patch_um is not None and not args.explain_patch_um > 0:
        raise ValueError(f"--explain-patch-um must be positive, got {args.explain_patch_um}")
    return {key: value for key, value in given.items() if value is not None}


def _write_explanations(args: argparse.Namespace, image, result, model, options: dict) -> None:
    import time

    from engine.cells.analyze import structure_plane
    from engine.cells.explain_files import explain_field, write_explanations

    started = time.perf_counter()
    plane = structure_plane(image)
    explanations = explain_field(plane, result, model, progress=not args.no_progress,
                                 **options)
    folder = write_explanations(args.out, plane, result, explanations)
    log.info("explained %d cells in %.1f s -> %s", len(explanations),
             time.perf_counter() - started, folder)
