"""Detectors: ΔF/F0 frames in, final per-frame class probabilities out, streaming.

Two interchangeable implementations behind one small interface (``push`` / ``flush`` returning
:class:`~engine.windows.FinalBlock` objects in stream order, each frame exactly once):

* :class:`NetworkDetector` — windows → backend (torch / onnxruntime / …) → stitch.
* :class:`ClassicalStreamDetector` — the network-free :class:`~engine.classical.ClassicalDetector`
  fed with a fixed temporal context, so it also gives the same result however frames are chunked.

Both expose ``lookahead_frames`` (the built-in latency), ``thresholds`` (for the tracker) and the
post-processing parameters the analyzer runs with them: ``tracker_config`` and
``characterize_config`` (the model directory's ``postprocess.json``; the code's defaults for the
classical detector, which has no model directory).
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from acquisition.stream_kind import StreamKind

from .backends import Backend
from .batching import WindowBatcher
from .characterize import CharacterizeConfig
from .classical import ClassicalDetector
from .instances import TrackerConfig
from .models.model_dir import ModelDir
from .models.postprocess_file import PostprocessParams
from .preprocess import network_input
from .windows import FinalBlock, Stitcher, Windower

log = logging.getLogger(__name__)


class Detector(Protocol):
    """What the analyzer needs from a detector."""

    name: str
    lookahead_frames: int
    thresholds: dict
    preprocess: dict  # Preprocessor keyword arguments the detector was built for
    trained_range: dict | None  # calibration range of the training data (None: not trained)
    tracker_config: TrackerConfig  # post-processing of its probabilities
    characterize_config: CharacterizeConfig

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]: ...

    def flush(self) -> list[FinalBlock]: ...


class NetworkDetector:
    """Windowed network inference for one stream.

    Parameters
    ----------
    model : ModelDir
        The model (config gives window geometry and normalization; thresholds for the tracker).
    backend : Backend
        Inference backend built for ``model`` (shared between streams).
    mode : {"accurate", "low_latency"}
    frame_shape : shape of one line ``(X,)`` or frame ``(Y, X)``.
    max_batch : int
        Windows sent to the backend in one call (without a batcher).
    batcher : WindowBatcher, optional
        Cross-stream batching (:mod:`engine.batching`): windows are submitted to it instead of
        run at once; ``push``/``flush`` return only the blocks completed so far, and blocks
        completed later (when the batcher runs a batch) are taken with :meth:`take_ready`.
    postprocess : PostprocessParams, optional
        Instead of the model directory's ``postprocess.json``.
    """

    def __init__(self, model: ModelDir, backend: Backend, mode: str,
                 frame_shape: tuple[int, ...], max_batch: int = 4,
                 batcher: WindowBatcher | None = None,
                 postprocess: PostprocessParams | None = None) -> None:
        self.geometry = model.config.geometry(mode)
        self.normalization = model.config.normalization
        self.preprocess = dict(model.config.preprocess)
        #: calibration range the model was trained on ({"pixel_um": [lo, hi], ...}) or None
        self.trained_range = model.config.calibration.get("trained_range")
        self.thresholds = dict(model.thresholds)
        self.postprocess = model.postprocess if postprocess is None else postprocess
        self.tracker_config = self.postprocess.tracker_for("network")
        self.characterize_config = self.postprocess.characterize
        self.backend = backend
        self.name = f"network:{model.config.name or 'model'}/{mode}"
        self.max_batch = max_batch
        self.batcher = batcher
        self.n_submitted = 0  # windows handed to the batcher
        self.n_delivered = 0  # of which results came back
        self._windower = Windower.from_geometry(self.geometry, frame_shape)
        self._stitcher = Stitcher()
        self._ready: list[FinalBlock] = []
        self._batch_error: BaseException | None = None  # a failed batch of this stream

    @property
    def lookahead_frames(self) -> int:
        return self.geometry.lookahead_frames

    @property
    def has_ready(self) -> bool:
        """Blocks completed by the batcher are waiting for :meth:`take_ready` (or a batch of
        this stream failed: :meth:`take_ready` raises it)."""
        return bool(self._ready) or self._batch_error is not None

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]:
        x = network_input(dff0, self.normalization)
        return self._process(self._windower.push(first, x))

    def flush(self) -> list[FinalBlock]:
        blocks = self._process(self._windower.flush())
        if self.batcher is not None and self.n_delivered < self.n_submitted:
            self.batcher.flush()
            blocks += self.take_ready()
        return blocks

    def take_ready(self) -> list[FinalBlock]:
        """Blocks finalized since the last call, in stream order; raises the error of a
        failed batch that held windows of this stream (the stream cannot go on)."""
        if self._batch_error is not None:
            error = self._batch_error
            raise RuntimeError(f"inference failed for this stream: {type(error).__name__}: "
                               f"{error}") from error
        blocks, self._ready = self._ready, []
        return blocks

    def _process(self, windows: list) -> list[FinalBlock]:
        if self.batcher is None:
            return self._run(windows)
        for window in windows:
            self.n_submitted += 1
            self.batcher.submit(self.backend, window, self._deliver, self._fail)
        return self.take_ready()

    def _deliver(self, window, probs: np.ndarray) -> None:
        self.n_delivered += 1
        self._ready.extend(self._stitcher.add(window, probs))

    def _fail(self, error: BaseException) -> None:
        self.n_delivered += 1
        self._batch_error = self._batch_error or error

    def _run(self, windows: list) -> list[FinalBlock]:
        blocks: list[FinalBlock] = []
        for i in range(0, len(windows), self.max_batch):
            group = windows[i:i + self.max_batch]
            batch = np.stack([w.data for w in group])[:, None]
            probs = self.backend.predict(batch)
            for window, window_probs in zip(group, probs, strict=True):
                blocks.extend(self._stitcher.add(window, window_probs))
        return blocks


class ClassicalStreamDetector:
    """The classical detector over one stream (:class:`~engine.classical.ClassicalStream`);
    its look-ahead is the detector's ``lookahead_frames``. ``postprocess``: the tracker and
    characterization parameters (default: the code's); ``kwargs``: ClassicalParams overrides."""

    def __init__(self, pixel_um: float, dt_ms: float, frame_shape: tuple[int, ...],
                 postprocess: PostprocessParams | None = None, **kwargs) -> None:
        self._detector = ClassicalDetector(pixel_um, dt_ms,
                                           StreamKind.from_item_shape(frame_shape), **kwargs)
        self.thresholds = self._detector.thresholds
        postprocess = PostprocessParams() if postprocess is None else postprocess
        self.tracker_config = postprocess.tracker_for("classical")
        self.characterize_config = postprocess.characterize
        self.preprocess: dict = {}
        self.trained_range = None  # no training: no trained range
        self.name = "classical"
        self._stream = self._detector.stream()
        self._received = 0  # frames pushed so far
        self._next = 0  # next frame to finalize

    @property
    def lookahead_frames(self) -> int:
        return self._detector.lookahead_frames

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]:
        if first != self._received:
            raise ValueError(f"frames must arrive in order: got {first}, expected {self._received}")
        self._received += len(dff0)
        return self._blocks(self._stream.push(dff0))

    def flush(self) -> list[FinalBlock]:
        return self._blocks(self._stream.flush())

    def _blocks(self, probs: np.ndarray) -> list[FinalBlock]:
        if probs.shape[0] == 0:
            return []
        block = FinalBlock(self._next, probs)
        self._next += probs.shape[0]
        return [block]
