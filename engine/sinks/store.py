"""SQLite store of streams, events, running statistics, cell summaries and, from structure
images, fields, cells and per-cell phenotypes (a ``"store"`` sink; cells tables in
:mod:`engine.sinks.cells_tables`).

One writer process and any number of reader processes (the dashboard, ``export-events``):
the database is in WAL mode, every write is one short transaction, readers open it read-only
(``SqliteStore(path, readonly=True)``) and see each committed write. The schema is versioned in
table ``schema_version``; :data:`MIGRATIONS` brings any older database up to date when a writer
opens it. The schema is documented in docs/ARCHITECTURE.md ("Store schema and PUB topics").
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.events import EVENT_COLUMNS, Event
from engine.sinks import cells_tables

log = logging.getLogger(__name__)

_EVENT_TYPES = {"event_id": "INTEGER", "kind": "TEXT", "stream": "TEXT", "cell": "TEXT",
                "flags": "TEXT"}
#: the events columns of schema v1 (frozen: later columns are added by their migration)
_V1_EVENT_COLUMNS = EVENT_COLUMNS[:EVENT_COLUMNS.index("score") + 1]
_V3_EVENT_COLUMNS = ("significance", "flags")


def _column_sql(columns) -> str:
    return ", ".join(f"{c} {_EVENT_TYPES.get(c, 'REAL')}" for c in columns)


STATS_COLUMNS = (
    "frames_in", "frames_analyzed", "lag_frames", "compute_p50_ms", "compute_p99_ms",
    "gaps", "errors", "queue_depth", "input_rate_hz", "analysis_rate_hz",
)
STREAM_COLUMNS = (
    "cell", "mode", "shape", "pixel_um", "dt_ms", "model", "backend", "backend_reason",
    "lookahead_ms",
)
CELL_COLUMNS = ("cell", "label", "confidence", "n_sparks", "votes", "n_skipped", "mean_proba",
                "n_effective", "n_out_of_range", "trust", "notes")


def _v1(db: sqlite3.Connection) -> None:
    db.executescript(
        f"""
        CREATE TABLE streams (stream TEXT PRIMARY KEY, cell TEXT, mode TEXT, shape TEXT,
            pixel_um REAL, dt_ms REAL, model TEXT, backend TEXT, backend_reason TEXT,
            started_s REAL, stopped_s REAL, info TEXT);
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, {_column_sql(_V1_EVENT_COLUMNS)},
            UNIQUE (stream, event_id));
        CREATE TABLE stream_stats (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, t_s REAL,
            {", ".join(f"{c} REAL" for c in STATS_COLUMNS)}, extra TEXT);
        CREATE INDEX stream_stats_stream ON stream_stats (stream, id);
        """
    )


def _v2(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        ALTER TABLE streams ADD COLUMN lookahead_ms REAL;
        CREATE TABLE cell_summaries (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, t_s REAL,
            cell TEXT, label TEXT, confidence REAL, n_sparks INTEGER, votes TEXT,
            n_skipped INTEGER, mean_proba REAL);
        CREATE INDEX cell_summaries_stream ON cell_summaries (stream, id);
        """
    )


def _v3(db: sqlite3.Connection) -> None:
    """Event significance and flags; what the cell vote's confidence rests on (the quality
    report travels in ``stream_stats.extra``)."""
    for column in _V3_EVENT_COLUMNS:
        db.execute(f"ALTER TABLE events ADD COLUMN {_column_sql([column])}")
    for column, sql_type in (("n_effective", "REAL"), ("n_out_of_range", "INTEGER"),
                             ("trust", "REAL"), ("notes", "TEXT")):
        db.execute(f"ALTER TABLE cell_summaries ADD COLUMN {column} {sql_type}")


#: (version, migration) in order; a database at version v runs every migration after v.
MIGRATIONS: list[tuple[int, Callable[[sqlite3.Connection], None]]] = [
    (1, _v1), (2, _v2), (3, _v3), (4, cells_tables.migrate_v4),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def schema_version(db: sqlite3.Connection) -> int:
    """Version of an open database (0 for one without a ``schema_version`` table)."""
    row = db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if row is None:
        return 0
    return int(db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the pending migrations up to ``target``, each in its own transaction."""
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise ValueError(f"store schema v{current} is newer than this castream (v{SCHEMA_VERSION})")
    for version, step in MIGRATIONS:
        if current < version <= target:
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
                step(db)
                db.execute("INSERT INTO schema_version VALUES (?)", (version,))
            log.info("store migrated to schema v%d", version)
            current = version
    return current


class StoreError(ValueError, sqlite3.DatabaseError):
    """The store file cannot be opened as a castream store (a folder, another file type);
    a ValueError for the CLI's one-line errors, an sqlite3 error for existing handlers."""


def _nan_if_none(value):
    return math.nan if value is None else value


class SqliteStore:
    """The SQLite sink (``kind = "store"``: failures raise) plus the dashboard's read helpers.

    Parameters
    ----------
    path : str or Path
        Database file (created and migrated by a writer).
    readonly : bool
        Open read-only (for readers in other processes); never migrates.
    """

    kind = "store"

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a castream store (give the "
                             ".sqlite file, e.g. castream-data/castream.sqlite)")
        try:
            if readonly:
                uri = f"file:{self.path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                migrate(self._db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a readable castream store ({exc}); give the "
                             "store of `castream serve --store`") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    # -- sink ---------------------------------------------------------------------------------
    def open_stream(self, stream_info: dict) -> None:
        """Insert the stream's row (``started_s`` defaults to now). A stream id used before
        keeps its earlier run: that run's rows in every table are renamed ``ID (run K)``
        first, so nothing stored is overwritten."""
        values = {c: stream_info.get(c) for c in STREAM_COLUMNS}
        if values["shape"] is not None:
            values["shape"] = json.dumps(list(values["shape"]))
        values["started_s"] = stream_info.get("started_s", time.time())
        columns = ["stream", *values, "stopped_s", "info"]
        row = [stream_info["stream"], *values.values(), None, json.dumps(stream_info, default=str)]
        if self.readonly:
            raise PermissionError(f"{self.path} is opened read-only")
        with self._lock, self._db:
            self._archive_earlier_run(stream_info["stream"])
            self._db.execute(f"INSERT INTO streams ({', '.join(columns)}) "
                             f"VALUES ({', '.join('?' * len(columns))})", row)

    def _archive_earlier_run(self, stream: str) -> None:
        """Rename an earlier run of ``stream`` (caller holds the lock and the transaction)."""
        if self._db.execute("SELECT 1 FROM streams WHERE stream = ?", (stream,)).fetchone() is None:
            return
        prefix = f"{stream} (run "
        earlier = self._db.execute("SELECT count(*) FROM streams WHERE substr(stream, 1, ?) = ?",
                                   (len(prefix), prefix)).fetchone()[0]
        archived = f"{prefix}{earlier + 1})"
        for table in ("streams", "events", "stream_stats", "cell_summaries",
                      *cells_tables.CELLS_TABLES):
            self._db.execute(f"UPDATE {table} SET stream = ? WHERE stream = ?", (archived, stream))
        log.warning("stream id %r was used before; the earlier run is kept in the store as %r",
                    stream, archived)

    def write_events(self, stream: str, events: list[Event]) -> None:
        """Append events (a repeated ``(stream, event_id)`` replaces the earlier row)."""
        rows = []
        for event in events:
            row = event.to_dict() if isinstance(event, Event) else dict(event)
            row["stream"] = stream
            rows.append([row.get(c) for c in EVENT_COLUMNS])
        self._write(
            f"INSERT OR REPLACE INTO events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
            rows,
        )

    def write_stats(self, stream: str, stats: dict) -> None:
        """Append one statistics sample; unknown keys go to the ``extra`` JSON column."""
        extra = {k: v for k, v in stats.items() if k not in STATS_COLUMNS and k != "t_s"}
        row = [stream, stats.get("t_s", time.time()), *(stats.get(c) for c in STATS_COLUMNS)]
        columns = ["stream", "t_s", *STATS_COLUMNS, "extra"]
        self._write(
            f"INSERT INTO stream_stats ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [[*row, json.dumps(extra, default=str)]],
        )

    def write_cell(self, stream: str, summary: dict) -> None:
        """Append the stream's current cell summary (``votes`` stored as JSON)."""
        row = [summary.get(c) for c in CELL_COLUMNS]
        row[CELL_COLUMNS.index("votes")] = json.dumps(summary.get("votes", {}))
        columns = ["stream", "t_s", *CELL_COLUMNS]
        self._write(
            f"INSERT INTO cell_summaries ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [[stream, summary.get("t_s", time.time()), *row]],
        )

    def write_cells(self, stream: str, record: dict) -> None:
        """A structure image's result: its ``fields`` row (with the label image) and one
        ``cells`` row per candidate ROI, in one transaction. ``record``: ``field``,
        ``t_s``, ``shape`` ([Y, X]), ``pixel_um``, ``summary``, ``rows``, ``labels``."""
        record = {**record, "stream": stream}
        if self.readonly:
            raise PermissionError(f"{self.path} is opened read-only")
        with self._lock, self._db:
            self._db.execute(cells_tables.FIELD_INSERT, cells_tables.field_row(record))
            self._db.executemany(cells_tables.CELLS_INSERT, cells_tables.cells_rows(record))

    def write_cell_phenotypes(self, stream: str, field: str, rows: list[dict]) -> None:
        """The per-cell summary of a Ca²⁺ stream attributed to the cells of ``field``."""
        self._write(cells_tables.PHENOTYPE_INSERT,
                    cells_tables.phenotype_rows(field, stream, time.time(), rows))

    def close_stream(self, stream: str) -> None:
        """Record the stream's stop time."""
        self._write("UPDATE streams SET stopped_s = ? WHERE stream = ?", [[time.time(), stream]])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _write(self, sql: str, rows: list[list]) -> None:
        if self.readonly:
            raise PermissionError(f"{self.path} is opened read-only")
        with self._lock, self._db:
            self._db.executemany(sql, rows)

    # -- read helpers (dashboard, export) -----------------------------------------------------
    def _query(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def list_streams(self) -> list[dict]:
        """All streams, newest first (``shape`` decoded, ``info`` dropped but for the
        ``field`` it names, None when it names none)."""
        rows = self._query("SELECT * FROM streams ORDER BY started_s DESC")
        for row in rows:
            row["shape"] = json.loads(row["shape"]) if row["shape"] else None
            row["field"] = json.loads(row.pop("info") or "{}").get("field")
        return rows

    def events(self, stream: str, since_id: int = 0, limit: int | None = None) -> list[dict]:
        """Events of ``stream`` with row ``id > since_id`` in insertion order (NULL → NaN).

        Each dict has the :data:`EVENT_COLUMNS` plus ``id``; poll with the last ``id`` seen.
        """
        sql = f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM events WHERE stream = ? AND id > ? ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            {k: _nan_if_none(v) for k, v in row.items()}
            for row in self._query(sql, (stream, since_id))
        ]

    def latest_stats(self, stream: str) -> dict | None:
        """The most recent statistics sample of ``stream`` (``extra`` merged in) or None."""
        rows = self.stats(stream, since_id=0, last=1)
        return rows[-1] if rows else None

    def stats(self, stream: str, since_id: int = 0, last: int | None = None) -> list[dict]:
        """Statistics samples with ``id > since_id``, oldest first (at most the ``last`` ones)."""
        sql = "SELECT * FROM stream_stats WHERE stream = ? AND id > ? ORDER BY id DESC"
        if last is not None:
            sql += f" LIMIT {int(last)}"
        rows = self._query(sql, (stream, since_id))[::-1]
        for row in rows:
            row.update(json.loads(row.pop("extra") or "{}"))
        return rows

    def cell_summary(self, stream: str) -> dict | None:
        """The latest cell summary of ``stream`` (``votes`` decoded) or None."""
        rows = self._query(
            "SELECT * FROM cell_summaries WHERE stream = ? ORDER BY id DESC LIMIT 1", (stream,)
        )
        if not rows:
            return None
        rows[0]["votes"] = json.loads(rows[0]["votes"] or "{}")
        return rows[0]

    def fields(self) -> list[dict]:
        """Every analysed structure image, newest first (``summary`` decoded, no labels)."""
        rows = self._query("SELECT id, field, stream, t_s, shape, pixel_um, rois_from, "
                           "n_candidates, n_cells, summary FROM fields ORDER BY id DESC")
        for row in rows:
            row["shape"] = json.loads(row["shape"])
            row["summary"] = json.loads(row["summary"] or "{}")
        return rows

    def field_labels(self, field: str) -> tuple[np.ndarray, float] | None:
        """The latest label image of ``field`` and its pixel size (µm), or None."""
        rows = self._query("SELECT labels, pixel_um FROM fields WHERE field = ? AND labels IS "
                           "NOT NULL ORDER BY id DESC LIMIT 1", (field,))
        if not rows:
            return None
        return cells_tables.decode_labels(rows[0]["labels"]), rows[0]["pixel_um"]

    def cells(self, field: str | None = None, stream: str | None = None) -> list[dict]:
        """Cell rows (``features`` decoded) of a field or an image stream, oldest first."""
        rows = self._select("cells", field, stream)
        for row in rows:
            row["features"] = json.loads(row["features"] or "{}")
        return rows

    def cell_phenotypes(self, field: str | None = None, stream: str | None = None) -> list[dict]:
        """Per-cell summaries (structure joined with spark phenotype), oldest first."""
        return self._select("cell_phenotypes", field, stream)

    def _select(self, table: str, field: str | None, stream: str | None) -> list[dict]:
        where = [(name, value) for name, value in (("field", field), ("stream", stream))
                 if value is not None]
        sql = f"SELECT * FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(f"{name} = ?" for name, _ in where)
        rows = self._query(sql + " ORDER BY id", tuple(value for _, value in where))
        return [{k: _nan_if_none(v) for k, v in row.items()} for row in rows]

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
