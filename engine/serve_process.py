"""One analysis process of ``serve --processes N``: the stream analyzers it hosts, and what it
sends back.

Threads share one interpreter, and the Python parts of a stream's analysis hold its lock: with
threads alone ``serve`` never used more than about 4.5 cores of 16 (README, "Many streams into
one serve"). With ``--processes N`` the analyzers live in N processes instead
(:mod:`engine.serve_remote` is the server's side); this module is what runs in each of them.

:func:`process_main` builds a :class:`~engine.pipeline.DetectorFactory` from the server's
:class:`~engine.pipeline.EngineConfig` (without cross-stream batching: each process runs its
own windows), loads every model at once (the server waits for that before it listens), reports
ready, then answers requests from its pipe, one at a time, in order:

======================  ==========================================================================
``start`` info          a new :class:`~engine.analyzer.StreamAnalyzer` (a restarted stream
                        replaces the old one); answers :class:`Started`
``push`` first, frames, the analyzer's ``push``; answers ``(events, cell_summary)`` (the cell
t_arrival               summary only when there are events: the server writes it then)
``state``               :class:`AnalyzerState`, for statistics samples and summaries; the
                        quality report's new warnings are logged here, once (a finished
                        stream's final state, for a reader that asks just after the finish)
``recent``              ``recent_dff0()`` (the dashboard preview)
``finish``              the analyzer's ``finish`` and its final :class:`AnalyzerState`; the
                        analyzer is dropped
``drop``                the analyzer is dropped (its stream failed); answers None
``stop``                the process exits
======================  ==========================================================================

A request is ``(seq, op, stream, args)``; every answer is ``(seq, "ok", value)`` or ``(seq,
"error", "Type: message")`` with the request's ``seq`` (0: the start-up report). A request that raises
fails that stream alone (the server marks it failed, as it does an in-process exception) and
the process goes on with its other streams. Log records go back to the server's handlers
through a queue (:class:`logging.handlers.QueueHandler`). The process ignores SIGINT and
SIGTERM (a Ctrl-C reaches the whole process group): the server finishes its streams, then
stops it with ``stop`` (or kills it).
"""

from __future__ import annotations

import logging
import logging.handlers
import signal
from dataclasses import dataclass, replace

import numpy as np

from .analyzer import AnalyzerStats, StreamAnalyzer, StreamInfo
from .cellclass import CellSummary

log = logging.getLogger(__name__)


@dataclass
class Started:
    """What the server needs of a new stream's analyzer at its start."""

    lookahead_ms: float
    detector_name: str
    min_significance: float
    described: dict  # model, backend, backend_reason (DetectorFactory.describe)


@dataclass
class AnalyzerState:
    """A stream analyzer's counters and reports at one moment (everything a statistics sample,
    a stream summary or the cells attribution reads)."""

    stats: AnalyzerStats
    budget_n_over: int
    quality: dict
    new_warnings: list[str]
    cell_summary: CellSummary | None
    baseline: np.ndarray | None
    blank: float | None

    @classmethod
    def of(cls, analyzer: StreamAnalyzer, stream: str) -> AnalyzerState:
        """The state now; the quality report's warnings not logged before are logged here
        (after the report brought its counters up to date)."""
        quality = analyzer.quality_report()
        return cls(stats=analyzer.stats, budget_n_over=analyzer.budget.n_over,
                   quality=quality, new_warnings=analyzer.quality.log_new_warnings(stream),
                   cell_summary=analyzer.cell_summary, baseline=analyzer.baseline,
                   blank=analyzer.blank)


def process_config(config, threads: int):
    """The server's engine configuration as one analysis process runs it: no cross-stream
    batching (the process runs its own windows) and ``threads`` intra-op threads for
    onnxruntime (unless the configuration sets them)."""
    options = {name: dict(kwargs) for name, kwargs in (config.backend_options or {}).items()}
    options.setdefault("onnxruntime", {}).setdefault("num_threads", threads)
    return replace(config, batch=False, backend_options=options)


def process_main(conn, config, threads: int, log_queue, log_level: int) -> None:
    """The body of one analysis process (see the module docstring)."""
    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process group:
    # serve stops cleanly on them, finishing every stream here, then stops this process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
    root.setLevel(log_level)
    import torch

    from .pipeline import DetectorFactory

    torch.set_num_threads(threads)
    try:
        factory = DetectorFactory(process_config(config, threads))
        factory.load_models()
    except Exception as exc:  # noqa: BLE001 - reported to the server, which refuses to start
        conn.send((0, "error", _reason(exc)))
        return
    conn.send((0, "ok", "ready"))
    host = _Host(factory)
    try:
        while True:
            try:
                seq, op, stream, args = conn.recv()
            except EOFError:  # the server is gone
                return
            if op == "stop":
                conn.send((seq, "ok", None))
                return
            try:
                conn.send((seq, "ok", host.handle(op, stream, args)))
            except Exception as exc:  # noqa: BLE001 - one stream's failure, sent back
                log.debug("stream %s: %s failed", stream, op, exc_info=exc)
                host.analyzers.pop(stream, None)
                conn.send((seq, "error", _reason(exc)))
    finally:
        factory.close()


#: final states of finished streams kept for late ``state`` requests (a reader on another
#: thread of the server, e.g. a benchmark's sampler, may ask just after the finish)
FINISHED_STATES_KEPT = 4


class _Host:
    """The analyzers of one process, by stream."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.analyzers: dict[str, StreamAnalyzer] = {}
        self.finished: dict[str, AnalyzerState] = {}

    def handle(self, op: str, stream: str, args: tuple):
        if op == "start":
            return self._start(*args)
        if op == "drop":
            self.analyzers.pop(stream, None)
            return None
        analyzer = self.analyzers.get(stream)
        if analyzer is None and stream in self.finished and op in ("state", "recent"):
            return self.finished[stream] if op == "state" else None
        if analyzer is None:
            raise RuntimeError(f"no analysis of stream {stream!r} in this process")
        if op == "push":
            events = analyzer.push(*args)
            return events, (analyzer.cell_summary if events else None)
        if op == "state":
            return AnalyzerState.of(analyzer, stream)
        if op == "recent":
            return analyzer.recent_dff0()
        if op == "finish":
            events = analyzer.finish()
            del self.analyzers[stream]
            state = self.finished[stream] = AnalyzerState.of(analyzer, stream)
            while len(self.finished) > FINISHED_STATES_KEPT:
                del self.finished[next(iter(self.finished))]
            return events, state
        raise ValueError(f"unknown request {op!r}")

    def _start(self, info: StreamInfo) -> Started:
        self.analyzers.pop(info.stream, None)
        self.finished.pop(info.stream, None)
        analyzer = self.factory.analyzer(info)
        self.analyzers[info.stream] = analyzer
        return Started(analyzer.lookahead_ms, analyzer.detector.name, analyzer.min_significance,
                       self.factory.describe(info))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
