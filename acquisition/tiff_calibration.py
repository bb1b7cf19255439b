"""Calibration (pixel size, line/frame interval, offset) from TIFF metadata.

Sources, merged in this order (the first that gives a value wins; flags given to
:func:`acquisition.tiff_source.open_tiff` override them all):

* ImageJ: ``unit`` + XResolution for pixel size; ``finterval`` (s) for the frame/line
  interval, or, for a line-scan, YResolution when ``yunit`` is a time unit;
* OME: ``PhysicalSizeX`` (+ unit) and ``TimeIncrement`` (+ unit);
* Zeiss LSM: ``VoxelSizeX`` and ``TimeIntervall`` (movies only; line time is not recorded);
* castream's JSON ``{"castream": {"pixel_um", "dt_ms", "blank", "cell"}}`` in the ImageJ
  ``Info`` (or tifffile metadata key ``castream``), as the simulator and recorder write it;
* a plain TIFF's XResolution when ResolutionUnit is centimeter.
"""

from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from typing import Any

import tifffile

from acquisition.stream_kind import StreamKind

log = logging.getLogger(__name__)

_LENGTH_UM = {"um": 1.0, "micron": 1.0, "microns": 1.0, "µm": 1.0, "μm": 1.0,
              "\\u00b5m": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
_TIME_MS = {"ms": 1.0, "msec": 1.0, "s": 1e3, "sec": 1e3, "second": 1e3, "seconds": 1e3,
            "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "min": 6e4}


def read_calibration(tif: tifffile.TiffFile, kind: StreamKind) -> dict[str, Any]:
    """Merge calibration from every metadata flavour present (first found wins)."""
    found: dict[str, Any] = {}
    readers = (_imagej_calibration, _ome_calibration, _lsm_calibration,
               _shaped_calibration, _resolution_tag_calibration)
    for reader in readers:
        try:
            values = reader(tif, kind)
        except Exception as exc:  # malformed metadata: fall through to other sources
            log.warning("%s: ignoring unreadable metadata (%s): %s", tif.filename,
                        reader.__name__, exc)
            continue
        for key, value in values.items():
            if value is not None and found.get(key) is None:
                found[key] = value
    return found


def _imagej_calibration(tif: tifffile.TiffFile, kind: StreamKind) -> dict[str, Any]:
    meta = tif.imagej_metadata if tif.is_imagej else None
    if not meta:
        return {}
    page = tif.pages.first
    length_um = _LENGTH_UM.get(str(meta.get("unit", "")).lower())
    own = {**meta, **_castream_info(meta.get("Info"))}
    values = {"pixel_um": number(own.get("pixel_um")), "dt_ms": number(own.get("dt_ms")),
              "blank": number(own.get("blank")), "cell": own.get("cell")}
    if length_um is not None:
        values["pixel_um"] = _per_unit(page, "XResolution", length_um) or values["pixel_um"]
    finterval_s = number(meta.get("finterval"))
    time_ms = _TIME_MS.get(str(meta.get("yunit", "")).lower())
    if finterval_s:
        values["dt_ms"] = finterval_s * 1e3
    elif kind.is_linescan and time_ms is not None:
        values["dt_ms"] = _per_unit(page, "YResolution", time_ms) or values["dt_ms"]
    return values


def _ome_calibration(tif: tifffile.TiffFile, kind: StreamKind) -> dict[str, Any]:
    if not tif.is_ome or not tif.ome_metadata:
        return {}
    pixels = next(e for e in ET.fromstring(tif.ome_metadata).iter() if e.tag.endswith("Pixels"))
    values: dict[str, Any] = {}
    size = number(pixels.get("PhysicalSizeX"))
    unit = _LENGTH_UM.get(pixels.get("PhysicalSizeXUnit", "µm").lower())
    if size and unit:
        values["pixel_um"] = size * unit
    increment = number(pixels.get("TimeIncrement"))
    time_unit = _TIME_MS.get(pixels.get("TimeIncrementUnit", "s").lower())
    if increment and time_unit:
        values["dt_ms"] = increment * time_unit
    return values


def _lsm_calibration(tif: tifffile.TiffFile, kind: StreamKind) -> dict[str, Any]:
    meta = tif.lsm_metadata if tif.is_lsm else None
    if not meta:
        return {}
    voxel_m = number(meta.get("VoxelSizeX"))
    interval_s = number(meta.get("TimeIntervall"))
    return {
        "pixel_um": voxel_m * 1e6 if voxel_m else None,
        "dt_ms": interval_s * 1e3 if interval_s and not kind.is_linescan else None,
    }


def _shaped_calibration(tif: tifffile.TiffFile, kind: StreamKind) -> dict[str, Any]:
    meta = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
    meta = {**meta, **_castream_info(meta.get("castream"))}
    return {key: meta.get(key) for key in ("pixel_um", "dt_ms", "blank", "cell")}


def _castream_info(value: Any) -> dict[str, Any]:
    """castream's calibration JSON ``{"castream": {...}}`` (ImageJ ``Info``), if present."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if isinstance(value, dict) and isinstance(value.get("castream"), (dict, str)):
        return _castream_info(value["castream"]) if isinstance(value["castream"], str) \
            else value["castream"]
    return value if isinstance(value, dict) and "pixel_um" in value else {}


def _resolution_tag_calibration(tif: tifffile.TiffFile, kind: StreamKind) -> dict[str, Any]:
    page = tif.pages.first
    unit = page.tags.get("ResolutionUnit")
    if unit is None or int(unit.value) != 3:  # only CENTIMETER is trustworthy (inch = DPI)
        return {}
    return {"pixel_um": _per_unit(page, "XResolution", 1e4)}


def _per_unit(page: Any, tag_name: str, unit_value: float) -> float | None:
    """Size of one pixel from a ``pixels per unit`` rational tag."""
    tag = page.tags.get(tag_name)
    if tag is None:
        return None
    numerator, denominator = tag.value
    if not numerator or not denominator:
        return None
    return round(denominator / numerator * unit_value, 12)


def number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
