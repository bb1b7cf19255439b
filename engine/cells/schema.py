"""The ``cells.csv`` schema of ``castream cells`` (DESIGN.md contract; keep it stable)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

#: version of cells.csv / summary.json written by this castream
CELLS_SCHEMA_VERSION = 1
#: the contract's columns, in order
CELL_COLUMNS: tuple[str, ...] = (
    "cell_id", "x_um", "y_um", "area_um2", "aspect_ratio", "is_cell_proba", "is_cell",
    "structure_score", "sarcomerisation", "directionality", "cell_source",
    "sarcomere_length_um", "orientation_order")
#: emptied when a ROI is rejected (``is_cell`` = 0)
STRUCTURE_COLUMNS: tuple[str, ...] = (
    "structure_score", "sarcomerisation", "directionality", "cell_source",
    "sarcomere_length_um", "orientation_order")
CELL_SOURCES: tuple[str, ...] = ("adult", "neonatal", "ipsc")
RATINGS: tuple[int, ...] = (1, 2, 3, 4)
#: the structure network's class heads, in the order its outputs come
HEADS: tuple[str, ...] = ("sarcomerisation", "directionality", "cell_source")


def empty(value: Any) -> bool:
    """True for a value written as an empty cell (None, NaN, "")."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any) -> str:
    if empty(value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_cells_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """``cells.csv`` with exactly :data:`CELL_COLUMNS`; NaN/None → empty cell."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CELL_COLUMNS)
        for row in rows:
            writer.writerow([format_value(row.get(name)) for name in CELL_COLUMNS])
    return path


def read_cells_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``cells.csv`` as strings (empty string = not measured)."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))
