"""The ingest's counters: per-stream :class:`StreamStats`, error totals and rate-limited logs.

Every counter is read and written under one condition variable (:attr:`IngestCounters.cond`),
which also wakes whoever waits on the counters (:meth:`acquisition.ingest.Ingest.wait_for`).
Memory stays bounded: past ``MAX_TRACKED_STREAMS`` stream ids the oldest stopped or
never-started ones are forgotten, and when none can be, new ids are counted under
``"_unattributed"`` (where errors without a readable stream id go too); the log keeps the
first few lines of each (stream, code), then one line per 10 s with a count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Container, Iterable

from acquisition.ingest_state import StreamStats

# the ingest's log lines keep the ingest's logger name, wherever they are written from
log = logging.getLogger("acquisition.ingest")

UNATTRIBUTED = "_unattributed"
MAX_TRACKED_STREAMS = 4096  # counters kept; beyond, stopped ones are forgotten (oldest first)
_LOG_FIRST_ERRORS = 5  # per (stream, code); then one line per _LOG_EVERY_S
_LOG_EVERY_S = 10.0


class IngestCounters:
    """Counters of every stream id seen, under one lock.

    ``running`` holds the ids of the running streams (the ingest's own mapping, read only
    here): errors of unknown ids share one log budget per code.
    """

    def __init__(self, running: Container[str | None]) -> None:
        self.cond = threading.Condition()
        self.by_stream: dict[str, StreamStats] = {}
        self._running = running
        self._error_totals: dict[str, int] = {}  # every error ever counted, by code
        self._logged: dict[tuple[str, str], list[float]] = {}  # (stream, code) -> [n, t_last]

    def snapshot(self) -> dict[str, StreamStats]:
        """Copies of every stream's counters."""
        with self.cond:
            return {name: stats.snapshot() for name, stats in self.by_stream.items()}

    def error_totals(self) -> dict[str, int]:
        """Every error counted so far, by code (never forgotten)."""
        with self.cond:
            return dict(self._error_totals)

    def wait_for(self, predicate: Callable[[dict[str, StreamStats]], bool],
                 timeout_s: float) -> bool:
        """Wait until ``predicate(counters by stream)`` is true (re-checked on every change)."""
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.by_stream), timeout=timeout_s)

    def wait_until_stopped(self, streams: Iterable[str] | int, timeout_s: float,
                           recording: bool) -> bool:
        """Wait until the named streams (or any ``streams`` streams, given an int) have
        stopped and, when ``recording``, their recordings are written; ``False`` on timeout."""
        def done(stats: dict[str, StreamStats]) -> bool:
            finished = [
                name for name, s in stats.items()
                if s.state == "stopped" and (not recording or s.recording_done)
            ]
            if isinstance(streams, int):
                return len(finished) >= streams
            return set(streams) <= set(finished)

        streams = streams if isinstance(streams, int) else list(streams)
        return self.wait_for(done, timeout_s)

    def count_error(self, stream: str | None, code: str, message: str) -> None:
        """Count (and log, rate-limited) one error of ``stream`` (``None``: unattributed)."""
        # logged first: whoever waits for the counter finds the line already written
        known = stream in self._running
        self.log_limited(stream if known else "*", code, message, logging.ERROR)
        with self.cond:
            stats = self.by_stream.get(stream or UNATTRIBUTED)
            if stats is None:
                stats = self.new_stats(stream or UNATTRIBUTED)
            stats.errors_by_code[code] = stats.errors_by_code.get(code, 0) + 1
            stats.last_receive_s = time.time()
            self._error_totals[code] = self._error_totals.get(code, 0) + 1
            self.cond.notify_all()

    def started(self, name: str, recording: str | None) -> StreamStats:
        """Counters of stream ``name``, which has just started (``recording``: its raw
        recording's base path); a stopped stream's id starts with new counters."""
        with self.cond:
            stats = self.by_stream.get(name)
            if stats is None or stats.state == "stopped":
                stats = self.new_stats(name)
            stats.state, stats.last_receive_s = "running", time.time()
            stats.messages += 1
            stats.recording = recording
        return stats

    def update_received(self, stats: StreamStats, new: int, duplicate: int) -> None:
        """Count one chunk message (caller holds the lock)."""
        stats.messages += 1
        stats.frames_received += new
        stats.duplicates += duplicate
        stats.last_receive_s = time.time()
        self.cond.notify_all()

    def new_stats(self, name: str) -> StreamStats:
        """Counters for a new stream id (caller holds the lock); memory stays bounded: past
        MAX_TRACKED_STREAMS the oldest stopped or never-started ids are forgotten, and when
        none can be, new ids are counted under ``_unattributed``."""
        if len(self.by_stream) >= MAX_TRACKED_STREAMS:  # forget the oldest eighth at once
            idle = [old for old, stats in self.by_stream.items()
                    if old != UNATTRIBUTED and stats.state != "running"]
            for old in idle[: max(1, MAX_TRACKED_STREAMS // 8)]:
                del self.by_stream[old]
            if not idle:
                name = UNATTRIBUTED
        stats = self.by_stream.get(name)
        if stats is None or stats.state == "stopped":
            stats = self.by_stream[name] = StreamStats(name)
        return stats

    def log_limited(self, stream: str, code: str, message: str, level: int) -> None:
        """Log the first few of each (stream, code), then one line per 10 s with a count."""
        if len(self._logged) > MAX_TRACKED_STREAMS:
            self._logged.clear()
        entry = self._logged.setdefault((stream, code), [0, 0.0])
        entry[0] += 1
        now = time.monotonic()
        if entry[0] <= _LOG_FIRST_ERRORS or now - entry[1] >= _LOG_EVERY_S:
            more = f" ({entry[0]} so far)" if entry[0] > _LOG_FIRST_ERRORS else ""
            log.log(level, "ingest [%s] stream=%s: %s%s", code, stream, message, more)
            entry[1] = now
