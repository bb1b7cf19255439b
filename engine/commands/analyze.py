"""``castream analyze``: recorded files through the same streaming engine as ``serve``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.input_axes import AXES_CHOICES

from ._engine_args import add_engine_arguments, engine_config

HELP = "analyze TIFF recordings (files or folders): events.csv + labels.tif per recording"

log = logging.getLogger("castream.analyze")

TIFF_SUFFIXES = (".tif", ".tiff", ".lsm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="TIFF files or folders (searched for *.tif, *.tiff, *.lsm)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (one sub-folder per recording when several)")
    parser.add_argument("--pixel-um", type=float, help="pixel size in µm (overrides metadata)")
    parser.add_argument("--dt-ms", type=float, help="line/frame interval in ms (overrides)")
    parser.add_argument("--axes", choices=AXES_CHOICES,
                        help="how to read the files: TX = line-scan (rows are consecutive "
                             "lines), TYX = movie; needed for a 2-D file whose metadata give "
                             "no line interval (YX, a single image, is refused)")
    parser.add_argument("--blank", type=float,
                        help="camera/PMT offset in counts (default: metadata, else estimated)")
    parser.add_argument("--saturation-counts", type=float,
                        help="raw level at which the detector saturates (default: the data "
                             "type's maximum, e.g. 255 for 8-bit, 65535 for 16-bit)")
    parser.add_argument("--workers", type=int, default=1,
                        help="analyze files in parallel on a local dask cluster of N processes")
    parser.add_argument("--scheduler", help="dask.distributed scheduler address (a cluster)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--force", action="store_true",
                        help="replace the results of an earlier run in --out (default: refuse)")
    parser.add_argument("--cells", type=Path, metavar="CELLS.tif",
                        help="label image of the recording's field (cells.tif of `castream "
                             "cells`): each event's cell becomes the id of the cell it lies in, "
                             "summary.json gets the per-cell summary (structure + sparks)")
    parser.add_argument("--cells-pixel-um", type=float,
                        help="pixel size of --cells in µm (default: its metadata or the "
                             "summary.json beside it)")
    parser.add_argument("--line-y-um", type=float,
                        help="line-scans: where the scan line lies in the --cells image (µm "
                             "along Y); without it a line-scan is attributed only in a field "
                             "with a single cell")
    parser.add_argument("--field-origin-um", type=float, nargs=2, metavar=("Y", "X"),
                        help="where the recording's pixel 0 lies in the --cells image (µm; "
                             "default 0 0: same origin)")
    add_engine_arguments(parser)


def find_inputs(inputs: list[Path]) -> list[Path]:
    """Expand folders into their TIFF files; clear error for anything missing."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in TIFF_SUFFIXES
                           and not p.name.endswith(("_class_label.tif", "_event_label.tif")))
            if not found:
                raise FileNotFoundError(f"no TIFF files in folder {item}")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return files


def output_dirs(files: list[Path], out: Path) -> list[Path]:
    """``out`` itself for one file, else ``out/<stem>`` (made unique)."""
    if len(files) == 1:
        return [out]
    seen: dict[str, int] = {}
    dirs = []
    for path in files:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        dirs.append(out / (path.stem if count == 0 else f"{path.stem}-{count + 1}"))
    return dirs


def run(args: argparse.Namespace) -> int:
    from engine.analyze_file import RESULT_FILES
    from engine.report import CELL_TABLE, QUALITY_TABLE, quality_row, text_table
    from engine.staging import refuse_existing

    files = find_inputs(args.inputs)
    jobs = list(zip(files, output_dirs(files, args.out), strict=True))
    if not args.force:
        refuse_existing([out for _, out in jobs], RESULT_FILES, "an earlier analysis")
    flags = {"pixel_um": args.pixel_um, "dt_ms": args.dt_ms, "blank": args.blank,
             "saturation_counts": args.saturation_counts, "axes": args.axes,
             **_cells_flags(args)}
    config = engine_config(args)
    if args.workers > 1 or args.scheduler:
        summaries, failures = _run_dask(jobs, config, flags, args)
    else:
        summaries, failures = _run_local(jobs, config, flags, not args.no_progress)
    if summaries:
        sys.stdout.write(text_table(summaries, CELL_TABLE))
        sys.stdout.write("\nrecording quality (summary.json \"quality\"):\n")
        sys.stdout.write(text_table([quality_row(s) for s in summaries], QUALITY_TABLE))
        for summary in summaries:
            for warning in (summary.get("quality") or {}).get("warnings", []):
                sys.stdout.write(f"warning: {summary['stream']}: {warning}\n")
        _write_cells_tables(summaries)
        sys.stdout.write(f"results in {args.out}\n")
    for path, message in failures:
        log.error("%s", message if str(path) in message else f"{path}: {message}")
    return 1 if failures else 0


def _cells_flags(args: argparse.Namespace) -> dict:
    """``cells`` (read once, one-line errors) and ``cells_metadata`` for ``analyze_file``."""
    if args.cells is None:
        if args.cells_pixel_um or args.line_y_um is not None or args.field_origin_um:
            raise ValueError("--cells-pixel-um, --line-y-um and --field-origin-um need --cells")
        return {}
    from engine.cells.io import read_field_cells

    if args.cells_pixel_um is not None and not args.cells_pixel_um > 0:
        raise ValueError(f"--cells-pixel-um must be positive, got {args.cells_pixel_um}")
    metadata = {"line_y_um": args.line_y_um}
    if args.field_origin_um:
        metadata["field_origin_um"] = list(args.field_origin_um)
    return {"cells": read_field_cells(args.cells, args.cells_pixel_um),
            "cells_metadata": metadata}


def _write_cells_tables(summaries: list[dict]) -> None:
    from engine.report import PHENOTYPE_TABLE, text_table

    for summary in summaries:
        if "cells" in summary:
            attribution = summary["cell_attribution"]
            sys.stdout.write(f"\ncells of field {attribution['field']} ({summary['stream']}: "
                             f"{attribution['n_attributed']} events in cells, "
                             f"{attribution['n_unattributed']} outside; {attribution['reason']})"
                             f"\n")
            sys.stdout.write(text_table(summary["cells"], PHENOTYPE_TABLE))


def _run_local(jobs, config, flags, progress):
    from engine.analyze_file import analyze_file
    from engine.pipeline import DetectorFactory

    factory = DetectorFactory(config)
    summaries, failures = [], []
    for path, out in jobs:
        try:
            summaries.append(analyze_file(path, out, config, progress=progress,
                                          factory=factory, **flags))
        except (OSError, ValueError) as exc:
            failures.append((path, str(exc)))
    factory.close()
    return summaries, failures


def _run_dask(jobs, config, flags, args):
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    from engine.analyze_file import analyze_file

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    summaries, failures = [], []
    with client:
        futures = {client.submit(analyze_file, path, out, config, pure=False, **flags): path
                   for path, out in jobs}
        bar = tqdm(total=len(futures), unit="file", disable=args.no_progress)
        for future in as_completed(futures):
            try:
                summaries.append(future.result())
            except (OSError, ValueError) as exc:
                failures.append((futures[future], str(exc)))
            bar.update(1)
        bar.close()
        if not args.scheduler:
            cluster.close()
    return summaries, failures
