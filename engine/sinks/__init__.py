"""Where events, statistics and cell summaries go: the :class:`Sink` protocol and its fan-out.

Two kinds of sink (DESIGN.md "Reliability rules"):

* ``"store"`` sinks keep data (SQLite store, tables, labels TIFF): a failure raises;
* ``"display"`` sinks show data (ZMQ PUB for the dashboard): a failure is logged and counted,
  and the pipeline carries on.

:class:`SinkSet` applies that rule when the pipeline calls several sinks at once. Two methods
are optional (a sink without them is skipped): ``write_cells`` (a structure image's cells) and
``write_cell_phenotypes`` (a Ca²⁺ stream's per-cell summary); see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol, runtime_checkable

from engine.events import Event

log = logging.getLogger(__name__)

SinkKind = Literal["store", "display"]


@runtime_checkable
class Sink(Protocol):
    """What the pipeline calls on every sink (one instance serves many streams)."""

    kind: SinkKind

    def open_stream(self, stream_info: dict) -> None:
        """A stream started; ``stream_info`` has at least ``stream`` (see docs/ARCHITECTURE.md)."""

    def write_events(self, stream: str, events: list[Event]) -> None:
        """Characterized events of ``stream``, in event_id order."""

    def write_stats(self, stream: str, stats: dict) -> None:
        """One sample of the stream's running statistics."""

    def write_cell(self, stream: str, summary: dict) -> None:
        """The current cell classification of the stream."""

    def close_stream(self, stream: str) -> None:
        """The stream ended."""

    def close(self) -> None:
        """Release resources (idempotent)."""


class SinkSet:
    """Calls every sink in turn: store sinks propagate errors, display sinks are logged.

    ``errors`` counts the display-sink failures by sink class name.
    """

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)
        self.errors: dict[str, int] = {}

    def call(self, method: str, *args, optional: bool = False) -> None:
        """Call ``sink.method(*args)`` on every sink (store failures raise after all ran);
        ``optional``: sinks without the method are skipped."""
        failure: Exception | None = None
        for sink in self.sinks:
            if optional and not hasattr(sink, method):
                continue
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # noqa: BLE001 - reliability rule decides
                if getattr(sink, "kind", "store") == "display":
                    name = type(sink).__name__
                    self.errors[name] = self.errors.get(name, 0) + 1
                    log.warning("display sink %s.%s failed: %s", name, method, exc)
                else:
                    failure = failure or exc
        if failure is not None:
            raise failure

    def open_stream(self, stream_info: dict) -> None:
        self.call("open_stream", stream_info)

    def write_events(self, stream: str, events: list[Event]) -> None:
        self.call("write_events", stream, events)

    def write_stats(self, stream: str, stats: dict) -> None:
        self.call("write_stats", stream, stats)

    def write_cell(self, stream: str, summary: dict) -> None:
        self.call("write_cell", stream, summary)

    def close_stream(self, stream: str) -> None:
        self.call("close_stream", stream)

    def write_cells(self, stream: str, record: dict) -> None:
        """A structure image's result (``field``, ``t_s``, ``shape``, ``pixel_um``,
        ``summary``, ``rows``, ``labels``); optional for sinks."""
        self.call("write_cells", stream, record, optional=True)

    def write_cell_phenotypes(self, stream: str, field: str, rows: list[dict]) -> None:
        """A Ca²⁺ stream's per-cell summary for ``field``; optional for sinks."""
        self.call("write_cell_phenotypes", stream, field, rows, optional=True)

    def close(self) -> None:
        self.call("close")
