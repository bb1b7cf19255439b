"""The ingest's bounded analysis queue and what happens when it is full.

The receive thread puts read-only views of the messages (no copy) on it; the engine takes them
with :meth:`AnalysisQueue.get`. A full queue is handled by a named policy: ``"block"``
(backpressure through ZeroMQ to the publishers: analysis lags and catches up, nothing is
skipped; the receive thread keeps its acknowledgements and heartbeats going while it waits) or
``"fail"`` (the item is not queued, the error is counted as ``"queue_full"`` and the consumer's
next :meth:`AnalysisQueue.get` raises :class:`IngestOverflow`; the raw recording still has the
data). Each stream's ``queue_depth`` counts its items queued or waiting to be queued.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from acquisition.ingest_counters import IngestCounters
from acquisition.ingest_state import IngestItem, StreamStats

POLICIES = ("block", "fail")


class IngestOverflow(RuntimeError):
    """The analysis queue was full under policy ``"fail"``."""


class AnalysisQueue:
    """Items of every stream for the engine, at most ``size`` at once.

    ``while_blocked`` is called every 0.1 s while a ``put`` waits on a full queue (policy
    ``"block"``), which ends when ``stopping`` is set.
    """

    def __init__(self, size: int, policy: str, counters: IngestCounters,
                 stopping: threading.Event, while_blocked: Callable[[], None]) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self._queue: queue.Queue[tuple[StreamStats, IngestItem]] = queue.Queue(size)
        self._counters = counters
        self._stopping = stopping
        self._while_blocked = while_blocked
        self._overflow: IngestOverflow | None = None

    def get(self, timeout_s: float | None = None) -> IngestItem | None:
        """Next item, or ``None`` after ``timeout_s``. Raises :class:`IngestOverflow` once
        after the queue overflowed under policy ``"fail"``."""
        if self._overflow is not None:
            overflow, self._overflow = self._overflow, None
            raise overflow
        try:
            stats, item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        with self._counters.cond:
            stats.queue_depth -= 1
        return item

    def qsize(self) -> int:
        return self._queue.qsize()

    def put(self, item: IngestItem, stats: StreamStats) -> None:
        """Queue ``item`` of the stream counted in ``stats``, by the policy when full."""
        with self._counters.cond:
            stats.queue_depth += 1
        if self.policy == "fail":
            try:
                self._queue.put_nowait((stats, item))
            except queue.Full:
                with self._counters.cond:
                    stats.queue_depth -= 1
                message = (f"analysis queue full ({self._queue.maxsize} items, policy=fail): "
                           f"{type(item).__name__} of stream {stats.stream!r} not queued "
                           "(it is in the raw recording)")
                self._overflow = IngestOverflow(message)
                self._counters.count_error(stats.stream, "queue_full", message)
            return
        while not self._stopping.is_set():  # block: backpressure, re-checking for shutdown
            try:
                self._queue.put((stats, item), timeout=0.1)
                return
            except queue.Full:
                self._while_blocked()
