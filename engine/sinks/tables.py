"""Events tables: CSV (exactly :data:`~engine.events.EVENT_COLUMNS`, in order) and Parquet.

NaN values (e.g. ``y_um`` of a line-scan) are written as empty CSV cells and as Parquet nulls.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

from engine.events import EVENT_COLUMNS, Event

_INT_COLUMNS = {"event_id"}
_TEXT_COLUMNS = {"kind", "stream", "cell", "flags"}


def _rows(events: Iterable[Event | dict]) -> list[dict]:
    rows = []
    for event in events:
        row = event.to_dict() if isinstance(event, Event) else dict(event)
        rows.append({c: row.get(c) for c in EVENT_COLUMNS})
    return rows


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def write_events_csv(path: str | Path, events: Iterable[Event | dict]) -> Path:
    """Write ``events`` to ``path`` with a header of exactly EVENT_COLUMNS; returns the path."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EVENT_COLUMNS)
        for row in _rows(events):
            writer.writerow([_cell(row[c]) for c in EVENT_COLUMNS])
    return path


def read_events_csv(path: str | Path) -> list[dict]:
    """Read an events CSV back (empty cells → NaN, numbers parsed)."""
    out = []
    with Path(path).open(newline="") as handle:
        for raw in csv.DictReader(handle):
            row = {}
            for column in EVENT_COLUMNS:
                value = raw.get(column, "")
                if column in _TEXT_COLUMNS:
                    row[column] = value
                elif column in _INT_COLUMNS:
                    row[column] = int(value)
                else:
                    row[column] = float(value) if value != "" else math.nan
            out.append(row)
    return out


def write_events_parquet(path: str | Path, events: Iterable[Event | dict]) -> Path:
    """Write ``events`` to a Parquet file with EVENT_COLUMNS (typed; NaN → null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(events)
    arrays = {}
    for column in EVENT_COLUMNS:
        values = [row[column] for row in rows]
        if column in _TEXT_COLUMNS:
            arrays[column] = pa.array(values, type=pa.string())
        elif column in _INT_COLUMNS:
            arrays[column] = pa.array(values, type=pa.int64())
        else:
            cleaned = [None if v is None or math.isnan(float(v)) else float(v) for v in values]
            arrays[column] = pa.array(cleaned, type=pa.float64())
    pq.write_table(pa.table(arrays), Path(path))
    return Path(path)
