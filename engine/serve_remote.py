"""The server's side of ``serve --processes N``: stream analyzers that live in other processes.

:class:`AnalysisProcesses` starts N analysis processes (:mod:`engine.serve_process`, spawned,
so no thread or library state is forked) and waits until each has loaded its models; a stream
that starts goes to the process with the fewest live streams and stays there.
:class:`RemoteAnalyzer` stands in for that stream's :class:`~engine.analyzer.StreamAnalyzer`
in :class:`~engine.serve.Server`: the same methods and attributes the server reads (``push``,
``finish``, ``collect``, ``stats``, ``cell_summary``, ``quality_report()``, ``baseline``,
``recent_dff0()``, ``new_cell_vote()``, ...), each a request to the process and its answer.
The post-processing pool's threads (:mod:`engine.serve_pool`) still give each stream one
worker at a time, in order; a worker waiting for its process's answer holds no lock of the
interpreter, so the processes run on as many cores as there are processes.

State that a statistics sample or a summary reads (counters, quality report, baseline) is
fetched once after each ``push`` that changed it, at the first read (:class:`AnalyzerState`),
not sent with every chunk. Chunk arrival times are ``time.perf_counter`` values, a clock the
processes share on Linux (``CLOCK_MONOTONIC``), so compute delays still count the ingest queue.

Isolation: a request that raises in the process fails its stream alone
(:class:`RemoteAnalysisError`, which the server's guard turns into a failed stream). A process
that dies (killed, out of memory) fails the streams it hosted at their next request; the
next stream to start gets a fresh process in its place. Without cross-stream batching each
process runs its own windows (:func:`engine.serve_process.process_config`).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing as mp
import sys
import threading
import time
import types

import numpy as np

from .analyzer import StreamInfo
from .cellclass import CellClassifier, CellVote, classifier_trust
from .serve_pool import available_cores
from .serve_process import AnalyzerState, Started, process_main

log = logging.getLogger(__name__)

#: the longest the server waits for a process to load its models at start-up
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0


class RemoteAnalysisError(RuntimeError):
    """A request to an analysis process failed (its message: the process's reason)."""


class _ToLogger(logging.Handler):
    """Hands a record from an analysis process to the server's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


class AnalysisStartError(RuntimeError):
    """An analysis process could not start (its models did not load, or not in time)."""


class _Process:
    """One analysis process and its pipe: one request at a time, each answer checked against
    its request's sequence number (an answer out of step means the pipe cannot be trusted:
    the process is killed and its streams fail)."""

    def __init__(self, index: int, ctx, config, threads: int, log_queue) -> None:
        self.index = index
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=process_main, name=f"castream-analysis-{index}",
                                args=(child, config, threads, log_queue, logging.getLogger().level),
                                daemon=True)
        with _main_not_imported():
            self.proc.start()
        child.close()
        self.lock = threading.Lock()
        self.streams: set[str] = set()
        self._seq = 0
        self._ready = threading.Event()  # its start-up report was read (or it failed)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the process to load its models; on failure it is killed and
        :class:`AnalysisStartError` raised."""
        try:
            if not self.conn.poll(timeout_s):
                raise AnalysisStartError(f"analysis process {self.index} did not load its models "
                                         f"within {timeout_s:.0f} s")
            try:
                _, status, value = self.conn.recv()
            except (EOFError, OSError):
                self.proc.join(timeout=1.0)
                raise AnalysisStartError(f"analysis process {self.index} exited at start-up "
                                         f"(exit code {self.proc.exitcode})") from None
            if status != "ok":
                raise AnalysisStartError(f"analysis process {self.index} could not start: "
                                         f"{value}")
        except AnalysisStartError:
            self.kill()
            raise
        finally:
            self._ready.set()

    def request(self, op: str, stream: str, *args):
        if not self._ready.wait(START_TIMEOUT_S):  # a fresh process still loading its models
            raise RemoteAnalysisError(f"analysis process {self.index} is not ready")
        with self.lock:
            self._seq += 1
            try:
                self.conn.send((self._seq, op, stream, args))
                seq, status, value = self._recv()
            except (OSError, ValueError) as exc:  # a closed pipe
                raise self._died() from exc
            if seq != self._seq:
                self.kill()
                raise RemoteAnalysisError(f"analysis process {self.index} answered out of step "
                                          f"(request {self._seq}, answer {seq}); stopped")
        if status != "ok":
            raise RemoteAnalysisError(value)
        return value

    def _recv(self):
        try:
            return self.conn.recv()
        except EOFError:
            raise self._died() from None

    def _died(self) -> RemoteAnalysisError:
        self.proc.join(timeout=1.0)
        return RemoteAnalysisError(f"analysis process {self.index} exited (exit code "
                                   f"{self.proc.exitcode}); its streams stopped")

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def stop(self) -> None:
        """Ask the process to exit (it finishes the request it is on), at most
        :data:`STOP_TIMEOUT_S` for each step; then kill it if it has not."""
        if self.alive and self.lock.acquire(timeout=STOP_TIMEOUT_S):
            try:
                self._seq += 1
                self.conn.send((self._seq, "stop", "", ()))
                if self.conn.poll(STOP_TIMEOUT_S):
                    self.conn.recv()
            except (OSError, EOFError, ValueError):
                pass
            finally:
                self.lock.release()
        self.proc.join(timeout=STOP_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        """Stop the process at once (it ignores SIGINT and SIGTERM: serve stops it)."""
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=STOP_TIMEOUT_S)
        self.conn.close()


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_not_imported():
    """While a process is spawned: it runs :func:`~engine.serve_process.process_main` only, so it
    need not import the server's ``__main__`` again (a script without a ``__main__`` guard would
    run twice; a test runner's or a dashboard page's ``__main__`` may not be importable at all):
    multiprocessing prepares the child from ``sys.modules["__main__"]``, here a bare module."""
    with _MAIN_LOCK:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


class AnalysisProcesses:
    """``n`` analysis processes hosting the streams' analyzers (see the module docstring).

    ``config``: the server's :class:`~engine.pipeline.EngineConfig`; ``classifier``: the cell
    classifier for the per-cell votes the server builds (its own copy); ``threads``:
    intra-op threads per process (default: the cores available shared out, at least 1).
    Raises :class:`AnalysisStartError` when a process cannot load its models (every process
    is stopped).
    """

    def __init__(self, config, n: int, classifier: CellClassifier | None = None,
                 threads: int | None = None, start_timeout_s: float = START_TIMEOUT_S) -> None:
        if n < 1:
            raise ValueError(f"processes must be >= 1, got {n}")
        self.config = config
        self.classifier = classifier
        self.threads = threads or max(1, available_cores() // n)
        self._ctx = mp.get_context("spawn")
        self._log_queue = self._ctx.Queue()
        self._listener = logging.handlers.QueueListener(self._log_queue, _ToLogger())
        self._listener.start()
        self._lock = threading.Lock()
        self.processes: list[_Process] = []
        t0 = time.perf_counter()
        try:
            for i in range(n):
                self.processes.append(self._spawn(i))
            for process in self.processes:
                process.wait_ready(start_timeout_s)
        except BaseException:
            self.close()
            raise
        log.info("%d analysis processes ready in %.1f s (%d thread%s each)", n,
                 time.perf_counter() - t0, self.threads, "s" if self.threads > 1 else "")

    def _spawn(self, index: int) -> _Process:
        return _Process(index, self._ctx, self.config, self.threads, self._log_queue)

    @property
    def n(self) -> int:
        return len(self.processes)

    def start(self, info: StreamInfo) -> RemoteAnalyzer:
        """A new analyzer for ``info``'s stream, in the process with the fewest streams (a
        process that died is replaced first: the new one loads its models outside the lock,
        so other streams start meanwhile)."""
        with self._lock:
            for process in self.processes:
                process.streams.discard(info.stream)
            process = min(self.processes, key=lambda p: (len(p.streams), p.index))
            process.streams.add(info.stream)
        if not process.alive:
            process = self._replace(process)
        try:
            started = process.request("start", info.stream, info)
        except BaseException:
            process.streams.discard(info.stream)
            raise
        return RemoteAnalyzer(process, info, started, self.classifier)

    def _replace(self, dead: _Process) -> _Process:
        """A fresh process in ``dead``'s place (once: a stream that finds it replaced already
        uses the new one)."""
        with self._lock:
            current = self.processes[dead.index]
            if current is not dead:
                current.streams.update(dead.streams)
                return current
            log.warning("analysis process %d had exited (exit code %s); starting a new one",
                        dead.index, dead.proc.exitcode)
            fresh = self.processes[dead.index] = self._spawn(dead.index)
            fresh.streams = dead.streams
        dead.kill()
        try:
            fresh.wait_ready(START_TIMEOUT_S)
        except AnalysisStartError:
            log.error("analysis process %d could not be restarted", dead.index)
            raise
        return fresh

    def close(self) -> None:
        """Stop every process (each finishes the request it is on) and the log listener."""
        for process in self.processes:
            process.stop()
        self._listener.stop()
        self._log_queue.close()


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


class _Quality:
    """``analyzer.quality`` as the server uses it: the process logged the new warnings when it
    sent its state; they are returned, not logged again."""

    def __init__(self, owner: RemoteAnalyzer) -> None:
        self._owner = owner

    def log_new_warnings(self, stream: str) -> list[str]:
        return list(self._owner.state.new_warnings)


class _Budget:
    def __init__(self, owner: RemoteAnalyzer) -> None:
        self._owner = owner

    @property
    def n_over(self) -> int:
        return self._owner.state.budget_n_over


class RemoteAnalyzer:
    """One stream's analyzer in an analysis process (see the module docstring)."""

    has_ready = False  # no cross-stream batcher: push and finish return every event

    def __init__(self, process: _Process, info: StreamInfo, started: Started,
                 classifier: CellClassifier | None) -> None:
        self._process = process
        self.info = info
        self.lookahead_ms = started.lookahead_ms
        self.detector = _Named(started.detector_name)
        self.min_significance = started.min_significance
        self.described = started.described
        self._classifier = classifier
        self._state: AnalyzerState | None = None
        self._stale = True
        self._pushes = 0  # a state fetched while a push ran is not taken as current
        self._cell_summary = None
        self._open = True
        self.quality = _Quality(self)
        self.budget = _Budget(self)

    def _request(self, op: str, *args):
        return self._process.request(op, self.info.stream, *args)

    # -- the analysis -------------------------------------------------------------------------
    def push(self, first: int, frames: np.ndarray, t_arrival: float | None = None) -> list:
        t_arrival = time.perf_counter() if t_arrival is None else t_arrival
        self._pushes += 1
        self._stale = True
        events, summary = self._request("push", first, np.asarray(frames), t_arrival)
        self._pushes += 1
        self._stale = True
        if summary is not None:
            self._cell_summary = summary
        return events

    def collect(self) -> list:
        return []

    def finish(self) -> list:
        events, state = self._request("finish")
        self._closed()
        self._set(state)
        return events

    def close(self) -> None:
        """Drop the analyzer in its process (a failed or empty stream); idempotent."""
        if self._open:
            self._closed()
            try:
                self._request("drop")
            except RemoteAnalysisError as exc:
                log.debug("stream %s: drop: %s", self.info.stream, exc)

    def _closed(self) -> None:
        self._open = False
        self._process.streams.discard(self.info.stream)

    def recent_dff0(self) -> tuple[int, np.ndarray] | None:
        return self._request("recent") if self._open else None

    # -- what the server reads ------------------------------------------------------------------
    @property
    def state(self) -> AnalyzerState:
        """The analyzer's counters and reports, fetched once after each change."""
        if self._stale and self._open:
            pushes = self._pushes
            state = self._request("state")
            if pushes == self._pushes and pushes % 2 == 0:  # no push began or ended meanwhile
                self._set(state)
            else:
                self._state = state
            return state
        return self._state

    def _set(self, state: AnalyzerState) -> None:
        self._state, self._stale = state, False
        self._cell_summary = state.cell_summary

    @property
    def stats(self):
        return self.state.stats

    @property
    def baseline(self) -> np.ndarray | None:
        return self.state.baseline

    @property
    def blank(self) -> float | None:
        return self.state.blank

    @property
    def cell_summary(self):
        return self._cell_summary

    def quality_report(self) -> dict:
        return self.state.quality

    def new_cell_vote(self) -> CellVote | None:
        """As :meth:`engine.analyzer.StreamAnalyzer.new_cell_vote`, with the server's copy of
        the classifier and the process's latest quality report."""
        if self._classifier is None:
            return None
        vote = CellVote(self._classifier, self.min_significance)
        vote.set_trust(*classifier_trust(self.info.stream_kind, self.quality_report()))
        return vote


def default_processes(config, workers: int | None = None) -> int:
    """``serve``'s default number of analysis processes: one per core available where there
    are at least two, the network runs on the CPU and ``workers`` does not ask for a single
    analysis thread; else 0 (analysis in the server's process). On a GPU (``--device cuda``,
    ``--backend tensorrt``, or ``auto`` with CUDA visible) processes would give up batching
    windows across streams, so the default stays 0 there."""
    if workers == 1 or config.batch is True:
        return 0
    device = str(config.device or "")
    if config.backend == "tensorrt" or device.startswith("cuda"):
        return 0
    if not device and config.backend in ("auto", "torch") and config.detector != "classical":
        import torch

        if torch.cuda.is_available():
            return 0
    cores = available_cores()
    return cores if cores >= 2 else 0
