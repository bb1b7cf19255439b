"""``serve``'s post-processing pool: per-stream work on N threads, one stream at a time, in order.

:class:`StreamPool` runs *tasks keyed by stream* on ``workers`` threads. The tasks of one key
form a serial queue: they run one at a time, in submission order, so a stream's chunks are
analysed in order and its events reach the sinks in order, while different streams run on
different workers at once. Keys take turns (a key that ran a task goes to the back of the
line), so one busy stream cannot starve the others of workers.

Threads: the per-stream work (preprocessing, the detector, tracking, characterization) is
numpy, scipy, scikit-image and onnxruntime code that releases the GIL for much of its time,
and threads share the store, the PUB socket, the structure registry and the cross-stream
batcher without copying anything. Measured (``bench/serve_scaling.py --workers``, README "Many
streams into one serve"): 16 line-scan streams on a 16-core machine were analysed 3.6x faster
with 4 threads than with 1, but no faster with 8 or 16 (the Python parts hold the GIL: serve
used at most about 4.5 cores with the GPU backend, 6.6 with onnxruntime on the CPU), and two
line-scans on 2 cores no faster with 2 threads than with 1 (``bench/serve_parallel.py``).
Hence the default pool size, the cores available but at most :data:`DEFAULT_MAX_WORKERS`;
beyond the lock, the streams' analyzers run in processes (``serve --processes``,
:mod:`engine.serve_remote`), which these workers drive.

Bounded work in flight (back-pressure): :meth:`StreamPool.submit` waits while the key already
has ``max_per_stream`` tasks queued or running, or the pool ``max_total``; the caller (the
server's dispatcher) then stops taking items off the ingest's bounded queue, which fills and
blocks the ingest (policy ``block``), as with one analysis thread. ``bounded=False`` is for the
few tasks the caller already limits (one statistics sample and one collect per stream).

:class:`InlinePool` has the same interface and runs each task at once on the caller's thread:
``serve --workers 1``, exactly the single analysis thread of before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: tasks (chunks, stops, statistics samples) one stream may have queued or running
MAX_PER_STREAM = 16
#: tasks the whole pool may hold (same order as the ingest queue's default bound)
MAX_TOTAL = 1024
#: threads beyond this gave no more throughput (module docstring); ``--workers`` can ask more
DEFAULT_MAX_WORKERS = 4


def available_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where
    that is missing)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """:func:`available_cores`, at most :data:`DEFAULT_MAX_WORKERS`."""
    return max(1, min(available_cores(), DEFAULT_MAX_WORKERS))


@dataclass
class _Key:
    """The serial queue of one key."""

    tasks: deque[tuple[Callable, tuple]] = field(default_factory=deque)
    running: bool = False

    @property
    def n(self) -> int:
        """Tasks queued or running."""
        return len(self.tasks) + self.running


class StreamPool:
    """``workers`` threads running per-key serial queues (module docstring).

    Parameters
    ----------
    workers : int
        Threads (at least 1).
    max_per_stream, max_total : int
        Bounds on the tasks queued or running, per key and in all (see :meth:`submit`).
    name : str
        Thread name prefix.
    """

    def __init__(self, workers: int, max_per_stream: int = MAX_PER_STREAM,
                 max_total: int = MAX_TOTAL, name: str = "castream-post") -> None:
        if workers < 1 or max_per_stream < 1 or max_total < 1:
            raise ValueError(f"need workers, max_per_stream, max_total >= 1, got {workers}, "
                             f"{max_per_stream}, {max_total}")
        self.workers = workers
        self.max_per_stream = max_per_stream
        self.max_total = max_total
        self._cond = threading.Condition()
        self._keys: dict[Hashable, _Key] = {}
        self._ready: deque[Hashable] = deque()  # keys with queued tasks, none running
        self._total = 0
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, fn: Callable, *args, bounded: bool = True,
               timeout_s: float | None = None) -> bool:
        """Queue ``fn(*args)`` behind ``key``'s earlier tasks. ``bounded``: first wait (at most
        ``timeout_s``; None: as long as it takes) until ``key`` has fewer than
        ``max_per_stream`` tasks and the pool fewer than ``max_total``. Returns False when that
        wait timed out (nothing queued)."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the pool is closed")
            if bounded and not self._cond.wait_for(lambda: self._has_room(key), timeout_s):
                return False
            state = self._keys.get(key)
            if state is None:
                state = self._keys[key] = _Key()
            state.tasks.append((fn, args))
            self._total += 1
            if not state.running and len(state.tasks) == 1:
                self._ready.append(key)
                self._cond.notify_all()
            return True

    def take_next(self, key: Hashable, accept: Callable[[Callable, tuple], bool]) -> tuple | None:
        """The arguments of ``key``'s next queued task, taken out of the queue, when
        ``accept(fn, args)``; else None. For the running task of ``key`` to join work queued
        behind it (the server joins a stream's queued chunks into one push)."""
        with self._cond:
            state = self._keys.get(key)
            if state is None or not state.tasks or not accept(*state.tasks[0]):
                return None
            _, args = state.tasks.popleft()
            self._total -= 1
            self._cond.notify_all()
            return args

    def put_back(self, key: Hashable, fn: Callable, *args) -> None:
        """Queue ``fn(*args)`` at the head of ``key``'s queue (a task :meth:`take_next` took
        and could not use), from the running task of ``key``."""
        with self._cond:
            self._keys[key].tasks.appendleft((fn, args))
            self._total += 1

    def pending(self, key: Hashable | None = None) -> int:
        """Tasks queued or running, for ``key`` or in all."""
        with self._cond:
            if key is None:
                return self._total
            state = self._keys.get(key)
            return state.n if state is not None else 0

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait until every task submitted so far has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._total == 0, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Run what is queued, then stop the threads (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("post-processing worker %s did not stop within %.0f s", thread.name,
                          timeout_s)

    # -- internals ---------------------------------------------------------------------------
    def _has_room(self, key: Hashable) -> bool:
        state = self._keys.get(key)
        return ((state is None or state.n < self.max_per_stream)
                and self._total < self.max_total)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._ready or self._closing)
                if not self._ready:
                    return  # closing, and nothing left to run
                key = self._ready.popleft()
                state = self._keys[key]
                fn, args = state.tasks.popleft()
                state.running = True
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a task's failure must not end the worker
                log.exception("post-processing task of %s failed", key)
            with self._cond:
                state.running = False
                self._total -= 1
                if state.tasks:
                    self._ready.append(key)
                else:
                    del self._keys[key]
                self._cond.notify_all()


class InlinePool:
    """:class:`StreamPool`'s interface, each task run at once on the caller's thread (one
    worker: the order of everything is the single analysis thread's)."""

    workers = 1

    def submit(self, key: Hashable, fn: Callable, *args, bounded: bool = True,
               timeout_s: float | None = None) -> bool:
        fn(*args)
        return True

    def take_next(self, key: Hashable, accept: Callable[[Callable, tuple], bool]) -> tuple | None:
        return None  # nothing is ever queued

    def put_back(self, key: Hashable, fn: Callable, *args) -> None:
        fn(*args)

    def pending(self, key: Hashable | None = None) -> int:
        return 0

    def join(self, timeout_s: float | None = None) -> bool:
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        pass


def make_pool(workers: int, **bounds) -> StreamPool | InlinePool:
    """:class:`InlinePool` for one worker, else a :class:`StreamPool` of ``workers``."""
    return InlinePool() if workers <= 1 else StreamPool(workers, **bounds)
