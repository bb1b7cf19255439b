"""The store's cells tables (schema v4): fields, their cells and the per-cell phenotypes.

* ``fields``: one row per structure image analysed (``field``, ``stream``, ``t_s``,
  ``shape`` (JSON ``[Y, X]``), ``pixel_um``, ``rois_from``, ``n_candidates``, ``n_cells``,
  ``summary`` (JSON), ``labels`` (the label image: ``np.save`` bytes, zlib-compressed; read
  with :func:`decode_labels`));
* ``cells``: one row per candidate ROI of a structure image (``field``, ``stream``, ``t_s``,
  then exactly ``engine.cells.schema.CELL_COLUMNS``, ``features`` (JSON: the other measured
  numbers, e.g. the pattern fractions)); unique ``(stream, cell_id)``;
* ``cell_phenotypes``: one row per accepted cell and Ca²⁺ stream attributed to it (``field``,
  ``stream`` (the Ca²⁺ stream), ``t_s``, then ``engine.cells_phenotype.PHENOTYPE_COLUMNS``);
  unique ``(stream, cell_id)``.

The column lists are frozen here (a migration must not change when the code's lists do).
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import zlib
from typing import Any

import numpy as np

CELLS_COLUMNS = (
    "cell_id", "x_um", "y_um", "area_um2", "aspect_ratio", "is_cell_proba", "is_cell",
    "structure_score", "sarcomerisation", "directionality", "cell_source",
    "sarcomere_length_um", "orientation_order")
PHENOTYPE_COLUMNS = (
    "cell_id", "is_cell", "is_cell_proba", "structure_score", "sarcomerisation",
    "directionality", "cell_source", "sarcomere_length_um", "orientation_order", "area_um2",
    "x_um", "y_um", "n_sparks", "n_puffs", "n_waves", "spark_rate_hz", "sampled_area_um2",
    "sampled_length_um", "sparks_per_100um2_s", "sparks_per_100um_s", "amplitude_dff0",
    "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms", "label", "confidence")
_INTEGER = {"cell_id", "is_cell", "sarcomerisation", "directionality", "n_sparks", "n_puffs",
            "n_waves", "n_candidates", "n_cells"}
_TEXT = {"cell_source", "label"}
#: tables whose rows belong to a stream (renamed with it when its id is used again)
CELLS_TABLES = ("fields", "cells", "cell_phenotypes")


def _columns_sql(columns) -> str:
    return ", ".join(f"{c} {'INTEGER' if c in _INTEGER else 'TEXT' if c in _TEXT else 'REAL'}"
                     for c in columns)


def migrate_v4(db: sqlite3.Connection) -> None:
    """Tables ``fields``, ``cells`` and ``cell_phenotypes`` (issue 13, live cells)."""
    db.executescript(
        f"""
        CREATE TABLE fields (id INTEGER PRIMARY KEY AUTOINCREMENT, field TEXT, stream TEXT,
            t_s REAL, shape TEXT, pixel_um REAL, rois_from TEXT, n_candidates INTEGER,
            n_cells INTEGER, summary TEXT, labels BLOB);
        CREATE INDEX fields_field ON fields (field, id);
        CREATE TABLE cells (id INTEGER PRIMARY KEY AUTOINCREMENT, field TEXT, stream TEXT,
            t_s REAL, {_columns_sql(CELLS_COLUMNS)}, features TEXT, UNIQUE (stream, cell_id));
        CREATE INDEX cells_field ON cells (field, id);
        CREATE TABLE cell_phenotypes (id INTEGER PRIMARY KEY AUTOINCREMENT, field TEXT,
            stream TEXT, t_s REAL, {_columns_sql(PHENOTYPE_COLUMNS)},
            UNIQUE (stream, cell_id));
        CREATE INDEX cell_phenotypes_field ON cell_phenotypes (field, id);
        """
    )


def encode_labels(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(labels), allow_pickle=False)
    return zlib.compress(buffer.getvalue(), 6)


def decode_labels(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def _sql_value(value: Any) -> Any:
    """NaN → NULL, numpy scalars → Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _features(row: dict) -> str:
    """The row's other measured numbers as JSON (pattern fractions, GLCM, ...)."""
    extra = {}
    for key, value in row.items():
        if key in CELLS_COLUMNS or isinstance(value, (str, tuple, list, dict)):
            continue
        value = _sql_value(value)
        if isinstance(value, (int, float)) or value is None:
            extra[key] = value
    return json.dumps(extra)


def field_row(record: dict) -> list:
    """``fields`` values for a structure result ``record`` (keys of :data:`FIELD_INSERT`)."""
    summary = record.get("summary", {})
    return [record["field"], record["stream"], record["t_s"], json.dumps(list(record["shape"])),
            record["pixel_um"], summary.get("rois_from"), summary.get("n_candidates"),
            summary.get("n_cells"), json.dumps(summary, default=_json_default),
            encode_labels(record["labels"]) if record.get("labels") is not None else None]


FIELD_INSERT = ("INSERT INTO fields (field, stream, t_s, shape, pixel_um, rois_from, "
                "n_candidates, n_cells, summary, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
CELLS_INSERT = (f"INSERT OR REPLACE INTO cells (field, stream, t_s, {', '.join(CELLS_COLUMNS)}, "
                f"features) VALUES ({', '.join('?' * (len(CELLS_COLUMNS) + 4))})")
PHENOTYPE_INSERT = (f"INSERT OR REPLACE INTO cell_phenotypes (field, stream, t_s, "
                    f"{', '.join(PHENOTYPE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * (len(PHENOTYPE_COLUMNS) + 3))})")


def cells_rows(record: dict) -> list[list]:
    return [[record["field"], record["stream"], record["t_s"],
             *(_sql_value(row.get(c)) for c in CELLS_COLUMNS), _features(row)]
            for row in record["rows"]]


def phenotype_rows(field: str, stream: str, t_s: float, rows: list[dict]) -> list[list]:
    return [[field, stream, t_s, *(_sql_value(row.get(c)) for c in PHENOTYPE_COLUMNS)]
            for row in rows]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
