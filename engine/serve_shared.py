"""What ``serve``'s post-processing workers share, and the locks that make sharing safe.

With :mod:`engine.serve_pool`, several streams are analysed at once on several threads. Three
things are shared between them:

* **the sinks** (SQLite store, PUB socket, display): not thread-safe (one SQLite connection,
  one ZeroMQ socket). :class:`Locked` puts every call behind one lock, so each write is whole;
  a stream's writes stay in its order because one stream runs on one worker at a time.
* **the structure registry** (:class:`~engine.cells_live.StructureStreams`): also behind a
  :class:`Locked` of its own. An image's cell analysis holds it, so Ca²⁺ streams that emit
  events meanwhile wait for it, as they did on the single analysis thread (they catch up).
* **inference**: the network backends and the cross-stream
  :class:`~engine.batching.WindowBatcher`. Inference stays serialized under one lock
  (:class:`InferenceGuard`), and everything else of a stream -- preprocessing, the classical
  half of the hybrid detector, tracking, characterization -- runs in parallel:

  - with the batcher, a batch that one stream's window completes is run on that stream's
    worker and *delivers other streams' windows* into their stitchers, so every call that
    reaches the batcher or a batched detector's results (``push``, ``flush``, ``take_ready``,
    ``has_ready``, the dispatcher's ``poll``) holds the lock; a GPU runs one batch at a time
    anyway, and batching across streams keeps working with any number of workers;
  - without the shared batcher (each detector runs its own, :mod:`engine.detectors`), a
    backend whose ``predict`` is documented thread-safe (onnxruntime's
    ``InferenceSession.run``, the default CPU backend) runs unlocked, so streams' inference
    overlaps; any other backend (torch, TensorRT, the CUDA runner with its pinned buffers and
    graphs) is locked.

  Only the network part of a detector is wrapped (:meth:`InferenceGuard.guard`): for the hybrid
  detector its ``network`` member, so its classical half stays parallel.

Lock order, to rule out deadlock: structure → sinks; the inference lock is never held while
taking either.
"""

from __future__ import annotations

import threading
from typing import Any

from .analyzer import StreamAnalyzer
from .detectors import NetworkDetector
from .hybrid import HybridDetector

#: backends whose ``predict`` may be called from several threads at once
THREAD_SAFE_BACKENDS = ("onnxruntime",)


class Locked:
    """Every method call on ``target`` under ``lock``; attributes read through unchanged."""

    def __init__(self, target: Any, lock: threading.RLock | None = None) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "lock", lock or threading.RLock())

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        lock = self.lock

        def locked(*args, **kwargs):
            with lock:
                return value(*args, **kwargs)

        locked.__name__ = name
        return locked

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)


class _GuardedNetwork:
    """A :class:`~engine.detectors.NetworkDetector` whose inference-side calls hold a lock;
    the whole :class:`~engine.detectors.Detector` protocol, the rest read through unlocked."""

    def __init__(self, detector: NetworkDetector, lock: threading.RLock) -> None:
        self._detector, self._lock = detector, lock
        self.name, self.preprocess = detector.name, detector.preprocess
        self.thresholds, self.trained_range = detector.thresholds, detector.trained_range
        self.network_calibration = detector.network_calibration
        self.tracker_config = detector.tracker_config
        self.characterize_config = detector.characterize_config
        self.dense_ops = detector.dense_ops

    @property
    def lookahead_frames(self) -> int:
        return self._detector.lookahead_frames

    @property
    def n_submitted(self) -> int:
        return self._detector.n_submitted

    @property
    def n_delivered(self) -> int:
        return self._detector.n_delivered

    @property
    def has_ready(self) -> bool:
        with self._lock:
            return self._detector.has_ready

    def push(self, first: int, dff0):
        with self._lock:
            return self._detector.push(first, dff0)

    def flush(self):
        with self._lock:
            return self._detector.flush()

    def take_ready(self):
        with self._lock:
            return self._detector.take_ready()


class InferenceGuard:
    """The inference lock and who needs it (module docstring).

    ``batcher``: the factory's shared :class:`~engine.batching.WindowBatcher`, or None.
    """

    def __init__(self, batcher=None) -> None:
        self.batcher = batcher
        self.lock = threading.RLock()

    def guard(self, analyzer: StreamAnalyzer) -> None:
        """Wrap the network part of ``analyzer``'s detector when it needs the lock."""
        detector = analyzer.detector
        if isinstance(detector, HybridDetector) and self._needs_lock(detector.network):
            detector.network = _GuardedNetwork(detector.network, self.lock)
        elif isinstance(detector, NetworkDetector) and self._needs_lock(detector):
            analyzer.detector = _GuardedNetwork(detector, self.lock)

    def poll(self, now: float | None = None) -> None:
        """Run the batches that are due (:meth:`~engine.batching.WindowBatcher.poll`)."""
        if self.batcher is not None:
            with self.lock:
                self.batcher.poll(now)

    def seconds_to_deadline(self) -> float | None:
        """:meth:`~engine.batching.WindowBatcher.seconds_to_deadline` (None: no batcher)."""
        if self.batcher is None:
            return None
        with self.lock:
            return self.batcher.seconds_to_deadline()

    @staticmethod
    def _needs_lock(detector: NetworkDetector) -> bool:
        return (detector.shares_batcher
                or getattr(detector.backend, "name", "") not in THREAD_SAFE_BACKENDS)
