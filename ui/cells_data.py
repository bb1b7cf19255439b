"""The Cells view's data: one analysed structure image from the store, joined for display.

Everything comes from the engine's store — tables ``fields`` (with the label image), ``cells``,
``cell_phenotypes`` and the events of the Ca²⁺ streams that name the same field — and, when
the dashboard knows ``serve``'s record directory (``castream dashboard --record-dir``), the
structure image's raw recording, drawn behind the outlines. Nothing is measured here: the
table, the card and the counts are the engine's numbers, only selected and joined.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.cells.patterns import PATTERN_CLASSES
from engine.cells.schema import CELL_COLUMNS
from ui.data import StoreReader, stream_kind_of

log = logging.getLogger(__name__)

#: the per-ROI pattern fractions kept in ``cells.features`` (Gerbin et al.'s six classes)
PATTERN_COLUMNS: tuple[str, ...] = tuple(f"frac_{name}" for name in PATTERN_CLASSES)
_CACHE_LOCK = threading.Lock()  # the caches below are shared by the page's sessions


@dataclass
class FieldData:
    """One structure image's result and what the store joined to its cells.

    ``cells``: one row per candidate ROI, the ``cells.csv`` columns, the pattern fractions and
    ``n_events`` (Ca²⁺ events attributed to it); accepted cells first, then by id.
    ``events``: the attributed events of the field's Ca²⁺ streams (``cell`` = a cell id).
    ``image``: the structure plane (z-stacks: maximum projection) when its recording was
    found, else None (the label image is drawn instead); ``image_source`` says which.
    """

    row: dict
    labels: np.ndarray
    cells: pd.DataFrame
    phenotypes: pd.DataFrame
    events: pd.DataFrame
    ca_streams: list[dict]
    image: np.ndarray | None = None
    image_source: str = "label image"

    @property
    def pixel_um(self) -> float:
        return float(self.row["pixel_um"])


def newest_fields(rows: list[dict]) -> list[dict]:
    """The newest structure result of each field (the one its Ca²⁺ streams are attributed
    to; the store keeps the label image of the newest only), newest field first."""
    newest: dict[str, dict] = {}
    for row in rows:  # ``fields()`` is newest first
        newest.setdefault(row["field"], row)
    return list(newest.values())


def field_label(row: dict) -> str:
    """``field-3 · 2 of 3 cells`` for the field picker."""
    return f"{row['field']} · {row.get('n_cells') or 0} of {row.get('n_candidates') or 0} cells"


def load_field(reader: StoreReader, row: dict, streams: list[dict],
               record_dir: str = "") -> FieldData:
    """Everything the Cells view shows about the structure image of ``fields`` row ``row``."""
    labels = _cached(("labels", str(reader.path), row["field"], row["id"]),
                     lambda: _labels(reader, row["field"]))
    ca_streams = field_ca_streams(streams, row)
    events = attributed_events(reader, ca_streams)
    cells = cell_table(reader.cells(row["field"], row["stream"]), events)
    phenotypes = reader.cell_phenotypes(row["field"])
    if not phenotypes.empty:  # only the Ca²⁺ streams attributed to this structure result
        phenotypes = phenotypes[phenotypes["t_s"] >= row["t_s"]]
    image, source = structure_image(record_dir, row, labels.shape)
    return FieldData(row, labels, cells, phenotypes, events, ca_streams, image, source)


def field_ca_streams(streams: list[dict], row: dict) -> list[dict]:
    """The Ca²⁺ streams that name the field and ran after its structure result (earlier
    ones were attributed to an earlier image of the field, or to none)."""
    return [s for s in streams
            if s.get("field") == row["field"] and not stream_kind_of(s).is_image
            and (s.get("stopped_s") is None or s["stopped_s"] >= row["t_s"])]


def attributed_events(reader: StoreReader, ca_streams: list[dict]) -> pd.DataFrame:
    """The events of ``ca_streams`` that carry a cell id (``cell`` all digits)."""
    frames = []
    for stream in ca_streams:
        events = reader.events(stream["stream"])
        if events.empty:
            continue
        cell = events["cell"].astype(str)
        frames.append(events[cell.str.fullmatch(r"\d+")].assign(cell_id=cell.astype("string")))
    if not frames:
        return pd.DataFrame(columns=["stream", "cell", "cell_id", "kind", "t_peak_ms"])
    events = pd.concat(frames, ignore_index=True)
    events["cell_id"] = events["cell_id"].astype(int)
    return events


def cell_table(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``cells.csv`` columns + pattern fractions + ``n_events``; accepted first, then by id."""
    if rows.empty:
        return pd.DataFrame(columns=[*CELL_COLUMNS, *PATTERN_COLUMNS, "n_events"])
    features = pd.DataFrame(list(rows["features"]), index=rows.index)
    table = rows[list(CELL_COLUMNS)].copy()
    for column in PATTERN_COLUMNS:
        table[column] = pd.to_numeric(features.get(column), errors="coerce")
    counts = events["cell_id"].value_counts() if not events.empty else pd.Series(dtype=int)
    table["n_events"] = table["cell_id"].map(counts).fillna(0).astype(int)
    table["is_cell"] = table["is_cell"].fillna(0).astype(int)
    for column in ("cell_id", "sarcomerisation", "directionality"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    return table.sort_values(["is_cell", "cell_id"], ascending=[False, True]).reset_index(drop=True)


def structure_image(record_dir: str, row: dict, shape: tuple[int, ...]
                    ) -> tuple[np.ndarray | None, str]:
    """The image stream's recorded structure plane (maximum projection of a z-stack) when
    ``record_dir`` holds a finished recording of it with the label image's (Y, X) size."""
    if not record_dir:
        return None, "label image (give the dashboard --record-dir to draw the structure image)"
    path = find_recording(Path(record_dir), row["stream"], shape, row["t_s"])
    if path is None:
        return None, f"label image (no finished recording of {row['stream']} in {record_dir})"
    try:
        return _read_plane(str(path), path.stat().st_mtime_ns), f"structure image {path.name}"
    except (OSError, ValueError) as exc:
        log.warning("cannot read the structure image %s: %s", path, exc)
        return None, f"label image ({path.name} unreadable: {exc})"


#: seconds before a record directory without the recording is searched again
SEARCH_AGAIN_S = 5.0
_FOUND: dict[tuple, tuple[Path | None, float]] = {}


def find_recording(record_dir: Path, stream: str, shape: tuple[int, ...],
                   t_s: float) -> Path | None:
    """:func:`search_recording`, remembered (a miss for :data:`SEARCH_AGAIN_S`): the view
    refreshes every second and a record directory may hold many recordings."""
    key = (str(record_dir), stream, tuple(shape), t_s)
    with _CACHE_LOCK:
        path, when = _FOUND.get(key, (None, -math.inf))
    if path is not None and path.is_file():
        return path
    if path is None and time.monotonic() - when < SEARCH_AGAIN_S:
        return None
    path = search_recording(record_dir, stream, shape, t_s)
    with _CACHE_LOCK:
        if len(_FOUND) > 256:
            _FOUND.clear()
        _FOUND[key] = (path, time.monotonic())
    return path


def search_recording(record_dir: Path, stream: str, shape: tuple[int, ...],
                     t_s: float) -> Path | None:
    """The ``<name>.tif`` whose ``<name>.json`` (:class:`acquisition.raw_files.RecordingSummary`)
    names ``stream`` with planes of ``shape``; the one written closest to ``t_s`` when a
    stream id was used again. A stream id archived by the store as ``ID (run K)`` is
    looked up as ``ID``."""
    stream = stream.split(" (run ")[0]
    best, best_gap = None, math.inf
    for sidecar in record_dir.glob("*.json"):
        try:
            summary = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(summary, dict) or summary.get("stream") != stream:
            continue
        tif = record_dir / str(summary.get("tif") or "")
        if not summary.get("tif") or not tif.is_file():
            continue
        if tuple(summary.get("shape") or ())[-2:] != tuple(shape):
            continue
        gap = abs(sidecar.stat().st_mtime - t_s)
        if gap < best_gap:
            best, best_gap = tif, gap
    return best


def _labels(reader: StoreReader, field: str) -> np.ndarray:
    labels_pixel = reader.field_labels(field)
    if labels_pixel is None:
        raise LookupError(f"the store keeps no label image for field {field!r}")
    return labels_pixel[0]


_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_ENTRIES = 6


def _cached(key: tuple, load) -> np.ndarray:
    """``load()`` once per ``key`` (label images, recorded planes; the newest few kept)."""
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    value = load()
    with _CACHE_LOCK:
        while len(_CACHE) >= _CACHE_ENTRIES:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = value
    return value


def _read_plane(path: str, mtime_ns: int) -> np.ndarray:
    """The recorded image as a float32 plane (cached per file version)."""
    def load() -> np.ndarray:
        import tifffile

        image = np.squeeze(tifffile.imread(path))
        if image.ndim == 3:
            image = image.max(axis=0)
        if image.ndim != 2:
            raise ValueError(f"recorded image has shape {image.shape}")
        return image.astype(np.float32)

    return _cached(("plane", path, mtime_ns), load)
