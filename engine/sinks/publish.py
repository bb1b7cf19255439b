"""ZMQ PUB of live results for the dashboard (a ``"display"`` sink: it never blocks).

Every message is two frames ``[topic, msgpack map]``; topics and fields are documented in
docs/ARCHITECTURE.md ("Store schema and PUB topics"). Sends use ``NOBLOCK``; a message that
cannot be queued (high-water mark reached) is dropped and counted in :attr:`dropped`; other
ZMQ errors are logged and counted in :attr:`errors`, never raised.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

from acquisition.curve import make_curve_server
from engine.events import Event

log = logging.getLogger(__name__)

PUB_SCHEMA_VERSION = 1
TOPICS = ("stream", "event", "stats", "cell", "preview")
#: the cells.csv columns plus the pattern fractions a dashboard's cell card shows
CELL_MESSAGE_FIELDS = (
    "cell_id", "x_um", "y_um", "area_um2", "aspect_ratio", "is_cell_proba", "is_cell",
    "structure_score", "sarcomerisation", "directionality", "cell_source",
    "sarcomere_length_um", "orientation_order", "frac_background", "frac_diffuse",
    "frac_fibres", "frac_disorganized_puncta", "frac_organized_puncta", "frac_zdiscs")


def _plain(value):
    """Convert numpy scalars/arrays and tuples to msgpack-friendly Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode(topic: str, body: dict) -> list[bytes]:
    """The two frames of one message (adds ``v`` and ``t_s``)."""
    payload = {"v": PUB_SCHEMA_VERSION, "t_s": time.time(), **_plain(body)}
    return [topic.encode(), msgpack.packb(payload, use_bin_type=True)]


def decode(frames: list[bytes]) -> tuple[str, dict]:
    """Inverse of :func:`encode` (for subscribers and tests)."""
    topic, payload = frames
    return topic.decode(), msgpack.unpackb(payload, raw=False)


class EventPublisher:
    """PUB socket bound (or connected) to ``endpoint``.

    Parameters
    ----------
    endpoint : str
        e.g. ``tcp://127.0.0.1:5557`` (localhost by default, DESIGN.md), ``ipc://...``,
        ``inproc://...`` (then pass the subscriber's ``context``).
    context : zmq.Context, optional
    hwm : int
        Send high-water mark (messages queued per subscriber before dropping).
    bind : bool
        Bind (default) or connect.
    """

    kind = "display"

    def __init__(
        self,
        endpoint: str,
        context: zmq.Context | None = None,
        hwm: int = 1000,
        bind: bool = True,
        curve_dir: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve_dir is not None:  # subscribers need a key on the allow-list
            make_curve_server(self._socket, curve_dir)
        (self._socket.bind if bind else self._socket.connect)(endpoint)
        self.sent = 0
        self.dropped = 0
        self.errors = 0

    def publish(self, topic: str, body: dict) -> bool:
        """Send one message without blocking; False if it was dropped or failed."""
        if self._socket is None:
            self.errors += 1
            return False
        try:
            self._socket.send_multipart(encode(topic, body), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        except (zmq.ZMQError, TypeError, ValueError) as exc:
            self.errors += 1
            log.warning("PUB %s: %s message not sent: %s", self.endpoint, topic, exc)
            return False
        self.sent += 1
        return True

    # -- sink ---------------------------------------------------------------------------------
    def open_stream(self, stream_info: dict) -> None:
        """Topic ``stream`` with ``state = "open"`` and the stream info."""
        self.publish("stream", {**stream_info, "state": "open"})

    def write_events(self, stream: str, events: list[Event]) -> None:
        """One ``event`` message per event (the EVENT_COLUMNS map)."""
        for event in events:
            row = event.to_dict() if isinstance(event, Event) else dict(event)
            self.publish("event", {**row, "stream": stream})

    def write_stats(self, stream: str, stats: dict) -> None:
        """Topic ``stats``: the statistics sample plus ``stream``."""
        self.publish("stats", {**stats, "stream": stream})

    def write_cell(self, stream: str, summary: dict) -> None:
        """Topic ``cell``: the cell summary plus ``stream``."""
        self.publish("cell", {**summary, "stream": stream})

    def write_cells(self, stream: str, record: dict) -> None:
        """Topic ``cell``, ``source = "structure"``: one message per candidate ROI of a
        structure image (``CELL_COLUMNS`` plus ``field``, ``n_candidates``, ``n_cells``);
        the label image stays in the store."""
        summary = record.get("summary", {})
        for row in record["rows"]:
            body = {name: row.get(name) for name in CELL_MESSAGE_FIELDS}
            self.publish("cell", {**body, "source": "structure", "field": record["field"],
                                  "stream": stream, "n_candidates": summary.get("n_candidates"),
                                  "n_cells": summary.get("n_cells")})

    def write_cell_phenotypes(self, stream: str, field: str, rows: list[dict]) -> None:
        """Topic ``cell``, ``source = "phenotype"``: one message per cell of ``field`` with its
        structure and the spark phenotype of ``stream``'s events in it."""
        for row in rows:
            self.publish("cell", {**row, "source": "phenotype", "field": field,
                                  "stream": stream})

    def publish_preview(
        self, stream: str, first: int, image_uint8: np.ndarray,
        lo: float = 0.0, hi: float = 1.0, step: int = 1,
    ) -> bool:
        """Topic ``preview``: a downsampled uint8 strip of recent data.

        ``image_uint8`` is ``(rows, cols)`` (a kymograph strip for line-scans, a frame for
        movies); pixel value v stands for ΔF/F0 = lo + v / 255 · (hi − lo); row i is frame
        ``first + i · step``.
        """
        image = np.ascontiguousarray(image_uint8, dtype=np.uint8)
        body = {
            "stream": stream, "first": int(first), "step": int(step),
            "shape": list(image.shape), "lo": float(lo), "hi": float(hi),
            "data": image.tobytes(),
        }
        return self.publish("preview", body)

    def close_stream(self, stream: str) -> None:
        """Topic ``stream`` with ``state = "closed"``."""
        self.publish("stream", {"stream": stream, "state": "closed"})

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
