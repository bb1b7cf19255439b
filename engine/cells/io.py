"""Files of ``castream cells``: the structure TIFF in, cells.csv / cells.tif / summary.json
and an overview picture out; and those outputs read back as a field's cells
(:func:`read_field_cells`, for ``analyze --cells``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from acquisition.stream_kind import StreamKind
from acquisition.tiff_calibration import read_calibration

from ..cells_attribution import FieldCells
from .analyze import CellsResult
from .schema import CELL_COLUMNS, read_cells_csv, write_cells_csv

_INT_COLUMNS = ("cell_id", "is_cell", "sarcomerisation", "directionality")
_TEXT_COLUMNS = ("cell_source",)

log = logging.getLogger(__name__)


def _read_tiff(path: Path, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"no such {what} file: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.asarray(), read_calibration(tif, StreamKind.IMAGE)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
        raise ValueError(f"cannot read {what} {path} as TIFF: {exc}") from exc


def read_structure_image(path: str | Path, pixel_um: float | None = None,
                         ) -> tuple[np.ndarray, float, str]:
    """Image array, pixel size (µm) and where it came from (``flags`` or ``metadata``)."""
    path = Path(path)
    image, calibration = _read_tiff(path, "structure image")
    if pixel_um is not None:
        return image, float(pixel_um), "flags"
    found = calibration.get("pixel_um")
    if not found:
        raise ValueError(f"{path} has no pixel size in its metadata; pass --pixel-um")
    return image, float(found), "metadata"


def read_labels(path: str | Path) -> np.ndarray:
    labels, _ = _read_tiff(Path(path), "labels")
    return labels


def write_structure_tiff(path: str | Path, image: np.ndarray, pixel_um: float) -> Path:
    """An ImageJ TIFF with the pixel size in its resolution tags (what ``cells`` reads)."""
    path = Path(path)
    axes = "ZYX" if image.ndim == 3 else "YX"
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / pixel_um, 1 / pixel_um),
                     metadata={"unit": "um", "axes": axes})
    return path


def write_outputs(out_dir: str | Path, result: CellsResult, plane: np.ndarray | None = None,
                  extra_summary: dict | None = None) -> dict[str, Path]:
    """``cells.csv``, ``cells.tif`` (int32 ids), ``summary.json`` and, given the analysed
    plane, ``overview.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"cells": write_cells_csv(out / "cells.csv", result.rows),
             "labels": out / "cells.tif", "summary": out / "summary.json"}
    pixel_um = result.summary.get("pixel_um")
    resolution = {"resolution": (1e4 / pixel_um, 1e4 / pixel_um),
                  "resolutionunit": "CENTIMETER"} if pixel_um else {}
    tifffile.imwrite(paths["labels"], result.labels.astype(np.int32), **resolution)
    summary = {**result.summary, **(extra_summary or {})}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    if plane is not None:
        from .overview import write_overview

        paths["overview"] = write_overview(out / "overview.png", plane, result)
    return paths


def read_field_cells(path: str | Path, pixel_um: float | None = None,
                     field: str | None = None) -> FieldCells:
    """A ``cells.tif`` written by ``castream cells`` (or any integer label TIFF) as a
    field's cells. Pixel size: ``pixel_um``, else the TIFF's calibration, else the
    ``summary.json`` beside it; rows from the ``cells.csv`` beside it (without one, every
    label id counts as an accepted cell, with no structure values); ``field`` defaults to the
    structure image's name in that ``summary.json``. One-line errors."""
    path = Path(path)
    labels, calibration = _read_tiff(path, "cells label image")
    labels = np.squeeze(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"{path} is not a cell label image: need integer ids >= 0 in (Y, X), "
                         f"got {labels.dtype} {list(labels.shape)}")
    summary_path = path.with_name("summary.json")
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if pixel_um is None:
        pixel_um = calibration.get("pixel_um") or summary.get("pixel_um")
    if not pixel_um or not float(pixel_um) > 0:
        raise ValueError(f"{path} has no pixel size (metadata or summary.json beside it); "
                         "pass --cells-pixel-um")
    csv_path = path.with_name("cells.csv")
    rows = [_typed_row(r) for r in read_cells_csv(csv_path)] if csv_path.is_file() else []
    if not rows:
        log.warning("no cells.csv beside %s: every label id counts as a cell, without "
                    "structure values", path)
    if field is None:  # the structure image's name, as `castream cells` recorded it
        field = Path(summary["input"]).stem if summary.get("input") else path.parent.name
    return FieldCells(field or path.stem, labels, float(pixel_um), rows)


def _typed_row(raw: dict[str, str]) -> dict[str, Any]:
    """A cells.csv row with numbers parsed (empty = NaN; ids and ratings as int)."""
    row: dict[str, Any] = {}
    for name in CELL_COLUMNS:
        value = raw.get(name, "")
        if name in _TEXT_COLUMNS:
            row[name] = value or None
        elif value == "":
            row[name] = float("nan")
        else:
            row[name] = int(float(value)) if name in _INT_COLUMNS else float(value)
    return row


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value)}")
