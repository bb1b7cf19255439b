"""Read-only access to the engine's SQLite store for the dashboard.

The page never writes: it opens the store with ``SqliteStore(path, readonly=True)`` and polls
the read helpers (``list_streams``, ``events``, ``latest_stats``, ``cell_summary``; for the
Cells view ``fields``, ``field_labels``, ``cells``, ``cell_phenotypes``). Events are
fetched incrementally (row ``id`` > the last one seen) so a refresh costs only the new rows.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from acquisition.stream_kind import StreamKind
from engine.events import EVENT_COLUMNS

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The store file is missing or not initialised yet (the engine has not written it)."""


@dataclass
class _EventCache:
    last_id: int = 0
    frame: pd.DataFrame = field(default_factory=lambda: empty_events())


def stream_kind_of(stream: dict) -> StreamKind:
    """The kind of a store's stream row: its wire ``mode``, else (no or an unknown mode) a
    2-D frame ``shape`` is a movie and anything else a line-scan."""
    try:
        return StreamKind.from_wire_mode(stream.get("mode"))
    except ValueError:
        return StreamKind.MOVIE if len(stream.get("shape") or []) == 2 else StreamKind.LINESCAN


def empty_events() -> pd.DataFrame:
    """An events table with the schema's columns and no rows."""
    return pd.DataFrame(columns=["id", *EVENT_COLUMNS])


class StoreReader:
    """Polls one store file; safe to share between Streamlit sessions (one lock).

    Parameters
    ----------
    path : str or Path
        The file written by ``castream serve --store``. It may not exist yet: every call
        then raises :class:`StoreUnavailable` until the engine creates it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store = None
        self._lock = threading.RLock()
        self._events: dict[str, _EventCache] = {}

    def _open(self):
        if self._store is not None:
            return self._store
        if not self.path.is_file():
            raise StoreUnavailable(f"store file {self.path} does not exist yet")
        from engine.sinks.store import SqliteStore

        try:
            self._store = SqliteStore(self.path, readonly=True)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open store {self.path}: {exc}") from exc
        return self._store

    def _call(self, method: str, *args):
        with self._lock:
            store = self._open()
            try:
                return getattr(store, method)(*args)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise StoreUnavailable(f"store {self.path} is not initialised yet") from exc
                raise

    def streams(self) -> list[dict]:
        """All streams, newest first, each with ``live`` (not stopped) added."""
        rows = self._call("list_streams")
        for row in rows:
            row["live"] = row.get("stopped_s") is None
        return sorted(rows, key=lambda r: (not r["live"], -(r.get("started_s") or 0.0)))

    def events(self, stream: str) -> pd.DataFrame:
        """All events of ``stream`` so far (insertion order), fetched incrementally."""
        with self._lock:
            cache = self._events.setdefault(stream, _EventCache())
            rows = self._call("events", stream, cache.last_id)
            if rows:
                new = pd.DataFrame(rows)
                frame = new if cache.frame.empty else pd.concat([cache.frame, new])
                frame = frame.drop_duplicates("event_id", keep="last")
                cache.frame = frame.reset_index(drop=True)
                cache.last_id = int(new["id"].max())
            return cache.frame.copy()

    def latest_stats(self, stream: str) -> dict | None:
        """The newest statistics sample of ``stream``, or None."""
        return self._call("latest_stats", stream)

    def stats_history(self, stream: str, last: int = 120) -> pd.DataFrame:
        """The ``last`` statistics samples (oldest first), for rate/lag sparklines."""
        return pd.DataFrame(self._call("stats", stream, 0, last))

    def cell_summary(self, stream: str) -> dict | None:
        """The newest cell classification of ``stream``, or None."""
        return self._call("cell_summary", stream)

    def fields(self) -> list[dict]:
        """Every analysed structure image (table ``fields``, no label image), newest first."""
        return self._call("fields")

    def field_labels(self, field: str) -> tuple | None:
        """The newest label image of ``field`` and its pixel size (µm), or None."""
        return self._call("field_labels", field)

    def cells(self, field: str, stream: str) -> pd.DataFrame:
        """The candidate ROIs of one structure image (``features`` decoded), by ``cell_id``."""
        return pd.DataFrame(self._call("cells", field, stream))

    def cell_phenotypes(self, field: str) -> pd.DataFrame:
        """The per-cell summaries of the Ca²⁺ streams attributed to ``field``."""
        return pd.DataFrame(self._call("cell_phenotypes", field))

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def last_update_s(stream: dict, stats: dict | None) -> float | None:
    """When the engine last wrote anything about ``stream`` (epoch seconds), if known."""
    times = [stream.get("started_s"), stream.get("stopped_s"), (stats or {}).get("t_s")]
    finite = [float(t) for t in times if t is not None and math.isfinite(float(t))]
    return max(finite) if finite else None


def is_stale(stream: dict, stats: dict | None, stale_s: float, now_s: float | None = None) -> bool:
    """A live stream whose engine has written nothing for ``stale_s`` seconds."""
    if not stream.get("live"):
        return False
    last = last_update_s(stream, stats)
    now_s = time.time() if now_s is None else now_s
    return last is None or now_s - last > stale_s


def events_csv(events: pd.DataFrame) -> bytes:
    """The events in ``events.csv`` column order (the schema's columns only)."""
    columns = [c for c in EVENT_COLUMNS if c in events.columns]
    return events.sort_values("event_id")[columns].to_csv(index=False).encode()
