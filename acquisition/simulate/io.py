"""Writing simulated recordings and their ground truth to files, and reading them back.

``write_recording(rec, out_dir, stem)`` writes

* ``stem.tif`` — the counts (uint16) as an ImageJ TIFF:

  - movies ``(T, Y, X)``: ImageJ hyperstack, axes ``TYX``; XResolution/YResolution =
    1 / ``pixel_um`` pixels per µm, ImageJ description ``unit=um``, ``finterval`` = frame
    interval in **seconds**;
  - line-scans ``(T, X)``: a plain 2-D ImageJ image (rows = time); XResolution =
    1 / ``pixel_um`` pixels per µm, YResolution = 1 / ``dt_ms`` rows per ms, description
    ``unit=um``, ``yunit=ms`` and ``finterval`` = line interval in seconds;
  - both: ImageJ ``Info`` (IJMetadata tag 50839, ``tif.imagej_metadata['Info']``) holds the
    JSON ``{"castream": {"version": 1, "axes", "pixel_um", "dt_ms", "blank", "cell",
    "phenotype", "seed", "source": "simulator"}}`` — the authoritative calibration.

* ``stem_class_label.tif`` — uint8 Dotti class ids, same calibration;
* ``stem_event_label.tif`` — instance ids, uint16 ImageJ TIFF (int32 plain TIFF if an id
  exceeds 65535), same calibration;
* ``stem_events.csv`` — one row per event, columns ``EVENT_COLUMNS``; NaN written empty.

``write_dotti_folder(recs, out_dir)`` writes ``NN_video.tif``, ``NN_class_label.tif``,
``NN_event_label.tif`` (and ``NN_events.csv``) for NN = 01, 02, … (Dotti et al. 2024 layout).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import tifffile

from ..stream_kind import StreamKind
from .groundtruth import EVENT_COLUMNS
from .recording import Recording

log = logging.getLogger(__name__)

CASTREAM_KEY = "castream"
METADATA_VERSION = 1
_INT_COLUMNS = {"event_id"}
_STR_COLUMNS = {"kind", "stream", "cell", "flags"}


def calibration_json(rec: Recording) -> str:
    """The ``{"castream": {...}}`` JSON stored in the ImageJ ``Info`` of every written TIFF."""
    info = {"version": METADATA_VERSION, "axes": rec.axes, "pixel_um": rec.pixel_um,
            "dt_ms": rec.dt_ms, "blank": rec.blank, "cell": rec.cell,
            "phenotype": rec.phenotype, "seed": rec.metadata.get("seed"), "source": "simulator"}
    return json.dumps({CASTREAM_KEY: info})


def write_tiff(path: Path, array: np.ndarray, rec: Recording) -> None:
    """Write ``array`` (same shape as ``rec.data``) with ``rec``'s calibration (see module doc)."""
    metadata: dict = {"unit": "um", "finterval": rec.dt_ms / 1e3, "Info": calibration_json(rec)}
    if rec.stream_kind is StreamKind.MOVIE:
        metadata["axes"] = rec.axes
        resolution = (1.0 / rec.pixel_um, 1.0 / rec.pixel_um)
    else:
        metadata.update(axes="YX", yunit="ms")
        resolution = (1.0 / rec.pixel_um, 1.0 / rec.dt_ms)
    if array.dtype == np.int32:
        if array.size and int(array.max()) > np.iinfo(np.uint16).max:
            tifffile.imwrite(path, array, metadata={"castream": calibration_json(rec)})
            return
        array = array.astype(np.uint16)
    tifffile.imwrite(path, array, imagej=True, resolution=resolution, metadata=metadata)


def _format(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def write_events_csv(path: Path, events: list[dict]) -> None:
    """Events table with exactly ``EVENT_COLUMNS``, NaN as empty cells."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(EVENT_COLUMNS)
        for ev in events:
            writer.writerow([_format(ev[name]) for name in EVENT_COLUMNS])


def _parse(name: str, text: str):
    if name in _STR_COLUMNS:
        return text
    if name in _INT_COLUMNS:
        return int(text)
    return float(text) if text != "" else math.nan


def read_events_csv(path: Path) -> list[dict]:
    """Inverse of :func:`write_events_csv` (ints, floats with NaN, strings)."""
    with open(path, newline="") as fh:
        return [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_recording(rec: Recording, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write the recording and its ground truth; returns the written paths by role."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"data": out / f"{stem}.tif", "class_label": out / f"{stem}_class_label.tif",
             "event_label": out / f"{stem}_event_label.tif", "events": out / f"{stem}_events.csv"}
    _write_all(rec, paths)
    return paths


def _write_all(rec: Recording, paths: dict[str, Path]) -> None:
    write_tiff(paths["data"], rec.data, rec)
    write_tiff(paths["class_label"], rec.class_mask, rec)
    write_tiff(paths["event_label"], rec.instance_mask.astype(np.int32), rec)
    write_events_csv(paths["events"], rec.events)
    log.debug("wrote %s (%d events)", paths["data"], len(rec.events))


def write_dotti_folder(recs: list[Recording], out_dir: str | Path) -> list[dict[str, Path]]:
    """Write recordings in Dotti et al.'s layout: ``NN_video.tif``, ``NN_class_label.tif``,
    ``NN_event_label.tif`` (plus ``NN_events.csv``), NN = 01, 02, …"""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, rec in enumerate(recs, start=1):
        nn = f"{index:02d}"
        paths = {"data": out / f"{nn}_video.tif", "class_label": out / f"{nn}_class_label.tif",
                 "event_label": out / f"{nn}_event_label.tif", "events": out / f"{nn}_events.csv"}
        _write_all(rec, paths)
        written.append(paths)
    return written


def read_tiff(path: str | Path) -> tuple[np.ndarray, dict]:
    """Array and ``castream`` calibration dict of a TIFF written by :func:`write_tiff`."""
    with tifffile.TiffFile(path) as tif:
        array = tif.asarray()
        info = (tif.imagej_metadata or {}).get("Info")
        if info is None:
            info = (tif.shaped_metadata or [{}])[0].get("castream")
    return array, json.loads(info)[CASTREAM_KEY] if info else {}


def read_ground_truth(directory: str | Path, stem: str) -> Recording:
    """Read back what :func:`write_recording` wrote (``clean_dff0`` is ``None``)."""
    root = Path(directory)
    data, cal = read_tiff(root / f"{stem}.tif")
    class_mask, _ = read_tiff(root / f"{stem}_class_label.tif")
    instance, _ = read_tiff(root / f"{stem}_event_label.tif")
    events = read_events_csv(root / f"{stem}_events.csv")
    return Recording(data, class_mask.astype(np.uint8), instance.astype(np.int32), events,
                     float(cal["pixel_um"]), float(cal["dt_ms"]), float(cal["blank"]),
                     str(cal["cell"]), str(cal["phenotype"]), str(cal["axes"]), None,
                     {"seed": cal.get("seed"), "simulator": "castream"})
