"""Time of ``castream cells`` on a field the size of the public hiPSC-CM dataset.

Simulates a 1,776 × 1,736 structure field (0.2 µm/px, ~355 × 347 µm, 14 cardiomyocytes and
12 non-cell objects), writes it as a calibrated TIFF and times the command a user runs, end to
end (TIFF read, segmentation, features, curation, scoring, cells.csv/cells.tif/summary.json;
``--no-overview`` and with the overview picture), best of ``--repeat`` runs, in this process
(the CLI's torch import is excluded from the first run by a warm-up). Target (issue 13): ≤ 5 s
on the 2-core development CPU.

Usage: ``python bench/cells_field.py [--repeat N] [--threads N]``; ``--write FIELD.tif`` only
writes the field (and ``FIELD_truth.csv``, one row per simulated object) for a manual run of
``castream cells FIELD.tif --out DIR``; ``--compare FIELD_truth.csv DIR/cells.csv`` scores
that run against the truth (centroids within 3 µm).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.io import write_structure_tiff
from engine.cli import main

SHAPE = (1776, 1736)
#: outside every training/validation/test seed range of offline/cellstruct
BENCH_SEED = 5_000_123


def _time(argv: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        assert main(argv) == 0
        best = min(best, time.perf_counter() - started)
    return best


def simulate_field():
    params = StructureFieldParams(shape_px=SHAPE, pixel_um=0.2, n_cardiomyocytes=14,
                                  n_debris=6, n_fibroblasts=2, n_out_of_focus=2, n_dead=2)
    return simulate_structure_field(params, seed=BENCH_SEED)


def write_field(path: Path) -> None:
    """The benchmark field as a calibrated TIFF plus its ground truth table."""
    field = simulate_field()
    write_structure_tiff(path, field.image, field.pixel_um)
    columns = ("object_id", "kind", "is_cell", "x_um", "y_um", "area_um2", "cell_source",
               "structure_score", "sarcomerisation", "directionality", "sarcomere_length_um")
    with open(path.with_name(path.stem + "_truth.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([obj[c] for c in columns] for obj in field.objects)


def compare(truth_csv: Path, cells_csv: Path) -> None:
    """Each candidate matched to the simulated object with the nearest centroid (≤ 3 µm)."""
    truth = list(csv.DictReader(truth_csv.open()))
    rows = list(csv.DictReader(cells_csv.open()))
    hits, errors, lengths = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}, [], []
    found = set()
    for row in rows:
        dist = [((float(o["x_um"]) - float(row["x_um"])) ** 2
                 + (float(o["y_um"]) - float(row["y_um"])) ** 2) ** 0.5 for o in truth]
        best = min(range(len(truth)), key=dist.__getitem__)
        is_true = dist[best] <= 3.0 and truth[best]["is_cell"] == "1"
        accepted = row["is_cell"] == "1"
        hits[("tp" if is_true else "fp") if accepted else ("fn" if is_true else "tn")] += 1
        if accepted and is_true:
            found.add(best)
            errors.append(abs(float(row["structure_score"]) - float(truth[best]["structure_score"])))
            if row["sarcomere_length_um"]:
                lengths.append(abs(float(row["sarcomere_length_um"])
                                   / float(truth[best]["sarcomere_length_um"]) - 1) * 100)
    n_true = sum(o["is_cell"] == "1" for o in truth)
    print(f"{n_true} true cells, {len(rows)} candidates: accepted true {hits['tp']}, "  # noqa: T201
          f"accepted non-cells {hits['fp']}, rejected true {hits['fn']}, rejected non-cells "
          f"{hits['tn']}, true cells without a candidate {n_true - len(found) - hits['fn']}; "
          f"score |error| mean {sum(errors) / max(len(errors), 1):.2f}; sarcomere length "
          f"measured in {len(lengths)}, |error| max {max(lengths, default=float('nan')):.1f} %")


def run(repeat: int, threads: int) -> None:
    torch.set_num_threads(threads)
    field = simulate_field()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_structure_tiff(Path(tmp) / "field.tif", field.image, field.pixel_um)
        argv = ["cells", str(path), "--out", str(Path(tmp) / "out"), "--force"]
        main(argv + ["--no-overview"])  # warm-up: imports, model load
        plain = _time(argv + ["--no-overview"], repeat)
        with_picture = _time(argv, repeat)
    cells = sum(o["is_cell"] for o in field.objects)
    print(f"field {SHAPE[0]}x{SHAPE[1]} px, {len(field.objects)} objects ({cells} cells), "  # noqa: T201
          f"{threads} threads: castream cells {plain:.2f} s (target <= 5 s), "
          f"with overview.png {with_picture:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, help="only write the field TIFF (+ truth CSV)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("TRUTH_CSV", "CELLS_CSV"),
                        help="only compare a cells.csv with the written field's truth")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.write:
        write_field(args.write)
    else:
        run(args.repeat, args.threads)
