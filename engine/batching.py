"""Cross-stream window batching: one GPU serves many streams.

Each stream's :class:`~engine.detectors.NetworkDetector` cuts its frames into windows and
*submits* them to a :class:`WindowBatcher`: a shared one (cross-stream batching), or else one of
its own that it runs before ``push`` returns (batch size 1 to ``max_batch``: just a small batch,
so there is one inference path). The batcher keeps one FIFO queue per (backend, window
shape) — windows of different streams with the same model and frame shape share a queue — and
runs ``backend.predict`` once per batch of up to ``max_batch`` windows. Each window's probabilities go back to the ``deliver`` callback it was
submitted with (its stream's :class:`~engine.windows.Stitcher`). Windows and their content do
not change, only when they run, so the events are the same as without sharing (bit-identical
with backends whose output does not depend on the batch, e.g. onnxruntime; within ~1e-7 for
torch 3D convolutions on CPU).

When a batch runs (on the caller's thread; :mod:`engine.serve_shared` serializes the callers
when ``serve`` has several post-processing workers):

- at :meth:`WindowBatcher.submit`, as soon as a queue holds ``max_batch`` windows (the queue
  never grows beyond that: bounded memory);
- at :meth:`WindowBatcher.poll`, for each queue whose oldest window has waited ``max_wait_ms``
  (bounded added latency; the server calls ``poll`` every loop iteration and sleeps at most
  :meth:`WindowBatcher.seconds_to_deadline`);
- at :meth:`WindowBatcher.flush`: everything (end of a stream, shutdown).

Windows of one stream are delivered in submission order (one queue per shape, FIFO).

A batch that fails (``backend.predict`` raises, e.g. a GPU error) never raises out of
:meth:`WindowBatcher.poll` / :meth:`~WindowBatcher.flush`: the exception goes to the ``fail``
callback of every window in that batch (its stream's detector, which re-raises it in its own
stream, so ``serve`` marks those streams failed and goes on with the others). Only windows
submitted without a ``fail`` callback make the batcher re-raise.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .backends import Backend
from .windows import Window

log = logging.getLogger(__name__)

Deliver = Callable[[Window, np.ndarray], None]
Fail = Callable[[BaseException], None]


@dataclass
class _Job:
    window: Window
    deliver: Deliver
    t_submit_s: float
    fail: Fail | None = None


@dataclass
class _Queue:
    backend: Backend
    jobs: deque[_Job] = field(default_factory=deque)


@dataclass
class BatcherStats:
    """Counters of a :class:`WindowBatcher` (for logs and benchmarks)."""

    windows: int = 0
    batches: int = 0
    full_batches: int = 0
    failed_batches: int = 0
    predict_s: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.windows / self.batches if self.batches else 0.0


class WindowBatcher:
    """Groups windows of the same backend and shape into batches (see module docstring).

    Parameters
    ----------
    max_batch : int
        Most windows per ``backend.predict`` call (match the TensorRT profile's max batch).
    max_wait_ms : float
        Longest a window waits for others before its partial batch runs (checked by ``poll``).
    clock : callable
        Seconds, monotonic (``time.perf_counter``; injectable for tests).
    """

    def __init__(self, max_batch: int = 32, max_wait_ms: float = 10.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait_ms >= 0, got {max_batch}, "
                             f"{max_wait_ms}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1e3
        self.clock = clock
        self.stats = BatcherStats()
        self._queues: dict[tuple, _Queue] = {}

    @property
    def pending(self) -> int:
        """Windows submitted and not yet run."""
        return sum(len(q.jobs) for q in self._queues.values())

    def submit(self, backend: Backend, window: Window, deliver: Deliver,
               fail: Fail | None = None) -> None:
        """Queue ``window`` for ``backend``; runs the queue at once when it is full. ``fail``
        receives the exception if the window's batch fails (else the batcher re-raises)."""
        key = (id(backend), window.data.shape)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(backend)
        queue.jobs.append(_Job(window, deliver, self.clock(), fail))
        if len(queue.jobs) >= self.max_batch:
            self._run(queue)

    def poll(self, now: float | None = None) -> int:
        """Run every queue whose oldest window has waited ``max_wait_ms``; windows run."""
        now = self.clock() if now is None else now
        ran = 0
        for queue in list(self._queues.values()):
            while queue.jobs and now - queue.jobs[0].t_submit_s >= self.max_wait_s:
                ran += self._run(queue)
        return ran

    def flush(self) -> int:
        """Run everything pending; returns the number of windows run."""
        ran = 0
        for queue in list(self._queues.values()):
            while queue.jobs:
                ran += self._run(queue)
        return ran

    def seconds_to_deadline(self, now: float | None = None) -> float | None:
        """Time until the next partial batch is due (0 if overdue); ``None`` if none pending."""
        oldest = [q.jobs[0].t_submit_s for q in self._queues.values() if q.jobs]
        if not oldest:
            return None
        now = self.clock() if now is None else now
        return max(0.0, min(oldest) + self.max_wait_s - now)

    def _run(self, queue: _Queue) -> int:
        """One batch from the head of ``queue``; results delivered in submission order."""
        n = min(self.max_batch, len(queue.jobs))
        jobs = [queue.jobs.popleft() for _ in range(n)]
        batch = np.stack([job.window.data for job in jobs])[:, None]
        t0 = time.perf_counter()
        try:
            probs = queue.backend.predict(batch)
        except Exception as exc:  # noqa: BLE001 - routed to the streams of this batch
            self._fail(jobs, exc)
            return n
        self.stats.predict_s += time.perf_counter() - t0
        self.stats.windows += n
        self.stats.batches += 1
        self.stats.full_batches += n == self.max_batch
        for job, window_probs in zip(jobs, probs, strict=True):
            try:
                job.deliver(job.window, window_probs)
            except Exception as exc:  # noqa: BLE001 - that window's stream fails alone
                self._fail([job], exc)
        return n

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        """Hand ``exc`` to each job's ``fail``; re-raise if a job has none."""
        self.stats.failed_batches += 1
        log.error("a batch of %d windows failed: %s: %s", len(jobs), type(exc).__name__, exc)
        unrouted = False
        for job in jobs:
            if job.fail is None:
                unrouted = True
            else:
                job.fail(exc)
        if unrouted:
            raise exc
