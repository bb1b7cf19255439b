"""Replay a TIFF recording into castream as if it were being acquired.

:func:`replay_file` opens the file lazily (:func:`~acquisition.tiff_source.open_tiff`),
streams it through a :class:`~acquisition.publisher.Publisher` and paces it by sleeping
until each message's acquisition time (recorded interval / ``rate``). There is no busy
waiting: on a small machine a spinning loop starves the ZeroMQ I/O thread.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from acquisition.curve import CurveClient
from acquisition.publisher import (
    DEFAULT_ACK_TIMEOUT_MS,
    DEFAULT_ENDPOINT,
    DeliveryReport,
    Publisher,
)
from acquisition.recorder import sanitize_stream_id
from acquisition.stream_kind import StreamKind
from acquisition.tiff_source import TiffSource, open_tiff
from acquisition.wire import DTYPES

log = logging.getLogger(__name__)

_READ_BLOCK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ReplaySummary:
    """What one replay sent."""

    path: str
    stream: str
    stream_kind: StreamKind
    items_sent: int  # lines or frames
    messages: int  # including start and stop
    seconds: float
    delivery: DeliveryReport | None = None  # what the receiver confirmed

    @property
    def items_per_s(self) -> float:
        return self.items_sent / self.seconds if self.seconds > 0 else float("inf")


def replay_file(
    path: str | os.PathLike,
    endpoint: str = DEFAULT_ENDPOINT,
    stream: str | None = None,
    rate: float | None = 1.0,
    chunk_lines: int = 64,
    frames_per_message: int = 1,
    pixel_um: float | None = None,
    dt_ms: float | None = None,
    blank: float | None = None,
    progress: bool = True,
    context: zmq.Context | None = None,
    send_timeout_ms: int | None = None,
    progress_position: int | None = None,
    ack_timeout_ms: int = DEFAULT_ACK_TIMEOUT_MS,
    curve: CurveClient | None = None,
) -> ReplaySummary:
    """Stream one TIFF file to an ingest at ``endpoint``.

    Parameters
    ----------
    stream
        Stream id; defaults to the file name without extension.
    rate
        Playback speed relative to acquisition: 1.0 = real time, 2.0 = twice as fast;
        ``None`` = as fast as the receiver takes it.
    chunk_lines
        Lines per message for line-scans.
    frames_per_message
        Frames per message for movies.
    pixel_um, dt_ms, blank
        Override the file's calibration.
    ack_timeout_ms
        How long the receiver may stay silent before the replay fails.
    curve
        CURVE client keys for an engine that requires them (:mod:`acquisition.curve`).

    Raises
    ------
    FileNotFoundError, acquisition.tiff_source.TiffSourceError
        Before anything is sent, for a missing, non-TIFF, corrupt or uncalibrated file.
    acquisition.publisher.PublisherTimeout
        Nothing answers at ``endpoint`` (or it stopped answering).
    acquisition.publisher.PublisherRefused, acquisition.publisher.DeliveryError
        The receiver refused the stream or did not record all of it.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 or None (as fast as possible), got {rate}")
    with open_tiff(path, pixel_um=pixel_um, dt_ms=dt_ms, blank=blank) as source:
        _check_wire_dtype(source)
        stream = stream or sanitize_stream_id(Path(path).name.split(".")[0])
        kind = source.stream_kind
        per_message = chunk_lines if kind.is_linescan else max(1, frames_per_message)
        with Publisher(endpoint, stream=stream, chunk_lines=chunk_lines, context=context,
                       send_timeout_ms=send_timeout_ms,
                       ack_timeout_ms=ack_timeout_ms, curve=curve) as publisher:
            started = time.monotonic()
            publisher.start(kind.wire_mode, source.dtype, source.shape[1:], source.pixel_um,
                            source.dt_ms, blank=source.blank, cell=source.cell,
                            metadata={"source": Path(path).name})
            _send_paced(source, publisher, per_message, rate, progress, progress_position)
            delivery = publisher.stop()
            messages, items = publisher.messages_sent, publisher.n_sent
        seconds = time.monotonic() - started
    summary = ReplaySummary(str(path), stream, kind, items, messages, seconds, delivery)
    log.info("replayed %s as stream %r: %d %ss in %d messages, %.2f s; %s", path, stream, items,
             kind.item_name, messages, seconds, delivery.describe())
    return summary


def _check_wire_dtype(source: TiffSource) -> None:
    if source.dtype.name not in DTYPES:
        raise ValueError(
            f"{source.path}: pixel type {source.dtype.name} cannot be streamed "
            f"(the wire carries {', '.join(DTYPES)}); convert the file first"
        )


def _send_paced(
    source: TiffSource, publisher: Publisher, per_message: int, rate: float | None,
    progress: bool, progress_position: int | None,
) -> None:
    """Send every item, sleeping until each message is 'acquired' at ``rate``."""
    from tqdm import tqdm  # imported here: only interactive replays need it

    item_bytes = source.dtype.itemsize * math.prod(source.shape[1:])
    read_items = max(per_message, _READ_BLOCK_BYTES // item_bytes // per_message * per_message)
    interval_s = None if rate is None else source.dt_ms / 1000.0 / rate
    unit = source.stream_kind.item_name
    origin = time.monotonic()
    with tqdm(total=len(source), unit=unit, unit_scale=True, disable=not progress,
              desc=publisher.stream, position=progress_position, leave=True) as bar:
        for block_first in range(0, len(source), read_items):
            block = source.read(block_first, block_first + read_items)
            for offset in range(0, block.shape[0], per_message):
                message = block[offset : offset + per_message]
                if interval_s is not None:
                    acquired_at = origin + (block_first + offset + len(message)) * interval_s
                    _sleep_until(acquired_at)
                publisher.send(message)
                bar.update(len(message))


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
