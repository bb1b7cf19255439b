"""What ``serve`` is done with: streams finished (their summaries) or failed (why), and waiting.

:class:`StreamOutcomes` is the server's record of streams it no longer analyses, shared by the
post-processing workers (which record outcomes) and whoever waits for them (the demo, tests,
benchmarks: :meth:`StreamOutcomes.wait`), behind one condition. Memory stays bounded for runs
of days (the store is the record): of finished streams only the newest ``keep`` summaries (with
their recent events) and the names are held; a failed stream keeps a one-line reason until it
starts again. An error of the analysis loop itself (:attr:`StreamOutcomes.error`) wakes every
waiter, who then raises it. :func:`report_failure` tells the sinks that a stream failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

log = logging.getLogger(__name__)

FINISHED_KEPT = 64  # summaries of finished streams kept in memory (newest)


class StreamOutcomes:
    """Finished and failed streams (module docstring); thread-safe."""

    def __init__(self) -> None:
        #: stream -> {"summary", "events" (the most recent), "n_events", "abandoned"}; the
        #: newest ``keep`` streams (:meth:`finished_stream`)
        self.finished: OrderedDict[str, dict] = OrderedDict()
        self.failed: dict[str, str] = {}  # stream -> why its analysis stopped
        self.error: Exception | None = None  # the analysis loop stopped on it
        self._names: set[str] = set()  # streams finished or failed
        self._changed = threading.Condition()

    @property
    def n_done(self) -> int:
        """Streams finished or failed (distinct names)."""
        return len(self._names)

    @property
    def n_failed(self) -> int:
        """Streams whose analysis failed (and that did not restart since)."""
        return len(self.failed)

    def restarted(self, stream: str) -> None:
        """``stream`` starts again: it is no longer failed."""
        self.failed.pop(stream, None)

    def done(self, stream: str) -> None:
        """``stream`` is done, with nothing to keep (an image stream)."""
        with self._changed:
            self._names.add(stream)
            self._changed.notify_all()

    def finished_stream(self, stream: str, record: dict, keep: int = FINISHED_KEPT) -> None:
        """``stream`` finished; ``record`` replaces an older one of the same name, and only the
        newest ``keep`` records are held."""
        with self._changed:
            self.finished.pop(stream, None)
            self.finished[stream] = record
            while len(self.finished) > keep:
                self.finished.popitem(last=False)
            self._names.add(stream)
            self._changed.notify_all()

    def failed_stream(self, stream: str, reason: str) -> None:
        """``stream``'s analysis failed; waiters are woken by :meth:`notify` once the failure
        is fully reported (its last statistics sample written)."""
        with self._changed:
            self.failed[stream] = reason
            self._names.add(stream)

    def loop_failed(self, error: Exception) -> None:
        """The analysis loop stopped on ``error``: every waiter raises it."""
        with self._changed:
            self.error = error
            self._changed.notify_all()

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(self, n_streams: int, timeout_s: float) -> bool:
        """Block until ``n_streams`` streams are done (False on timeout); raises
        ``RuntimeError`` if the analysis loop failed meanwhile."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: self.n_done >= n_streams or self.error is not None, timeout_s)
        if self.error is not None:
            raise RuntimeError(f"analysis stopped: {self.error}") from self.error
        return done


def report_failure(sinks, stream: str, reason: str, n_events: int) -> None:
    """A last statistics sample of ``stream`` that says why it failed, and its store row
    closed; a sink that fails meanwhile is logged (the stream is failing already)."""
    for method, args in (("write_stats", (stream, {"t_s": time.time(), "failed": reason,
                                                   "events": n_events})),
                         ("close_stream", (stream,))):
        try:
            getattr(sinks, method)(*args)
        except Exception as exc:  # noqa: BLE001 - already failing
            log.error("stream %s: %s after the failure also failed: %s", stream, method, exc)
