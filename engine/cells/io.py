"""Files of ``castream cells``: the structure TIFF in, cells.csv / cells.tif / summary.json
and an overview picture out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from acquisition.tiff_calibration import read_calibration

from .analyze import CellsResult
from .schema import write_cells_csv

log = logging.getLogger(__name__)


def _read_tiff(path: Path, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"no such {what} file: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.asarray(), read_calibration(tif, linescan=False)
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
    tifffile.imwrite(paths["labels"], result.labels.astype(np.int32))
    summary = {**result.summary, **(extra_summary or {})}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    if plane is not None:
        from .overview import write_overview

        paths["overview"] = write_overview(out / "overview.png", plane, result)
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value)}")
