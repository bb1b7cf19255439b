"""Detectors: ΔF/F0 frames in, final per-frame class probabilities out, streaming.

Two interchangeable implementations behind one small interface (``push`` / ``flush`` returning
:class:`~engine.windows.FinalBlock` objects in stream order, each frame exactly once):

* :class:`NetworkDetector` — windows → backend (torch / onnxruntime / …) → stitch.
* :class:`ClassicalStreamDetector` — the network-free :class:`~engine.classical.ClassicalDetector`
  fed with a fixed temporal context, so it also gives the same result however frames are chunked.

Both implement the whole :class:`Detector` protocol (and so does the hybrid detector,
:mod:`engine.hybrid`, and ``serve``'s locked wrapper, :mod:`engine.serve_shared`); the analyzer
reads nothing else. Besides the blocks: ``lookahead_frames`` (the built-in latency),
``thresholds`` (for the tracker), ``tracker_config`` and ``characterize_config`` (the model
directory's ``postprocess.json``; the code's defaults for the classical detector, which has no
model directory), and the counters the analyzer times each chunk with (``n_submitted``,
``n_delivered``).

Batching is the network's only inference path: its windows always go through a
:class:`~engine.batching.WindowBatcher` -- the cross-stream one that ``serve`` polls, or the
detector's own, run before ``push`` returns (a small batch: up to ``max_batch`` windows of that
push per ``predict``, as the windows came). So there is one delay path, whatever the detector.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Protocol, runtime_checkable

import numpy as np

from acquisition.stream_kind import StreamKind

from .backends import Backend
from .batching import WindowBatcher
from .characterize import CharacterizeConfig
from .classical import ClassicalDetector
from .dense_ops import CPU_OPS, DenseOps
from .instances import TrackerConfig
from .models.model_dir import ModelDir
from .models.postprocess_file import PostprocessParams
from .network_scale import SpatialResampler, TemporalResampler, network_calibration
from .preprocess import network_input
from .windows import FinalBlock, Stitcher, Window, Windower

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """What the analyzer needs from a detector, all of it.

    ``push`` / ``flush`` return the :class:`~engine.windows.FinalBlock` objects final so far, in
    stream order, each frame exactly once; inference that runs later (a cross-stream batcher
    runs a batch when it is full or due) leaves blocks for :meth:`take_ready`, and ``has_ready``
    says there are some. Both counters are stream frame indices: ``n_submitted`` is how far the
    work handed to inference so far will make frames final (the stop of the last network
    window's kept frames; the classical detector computes at once), ``n_delivered`` how far the
    blocks returned by ``push`` / ``take_ready`` / ``flush`` reach. The analyzer times a chunk
    that advanced ``n_submitted`` -- the frames it completed -- from its arrival until
    ``n_delivered`` reaches them and they are post-processed: one compute-delay path for every
    detector.
    """

    name: str
    thresholds: dict
    preprocess: dict  # Preprocessor keyword arguments the detector was built for
    trained_range: dict | None  # calibration range of the training data (None: not trained)
    #: ``{"pixel_um", "dt_ms"}`` the network sees the stream at when it is resampled into the
    #: trained range (:mod:`engine.network_scale`); None when it sees the stream as it is
    network_calibration: dict | None
    tracker_config: TrackerConfig  # post-processing of its probabilities
    characterize_config: CharacterizeConfig
    #: where the stream's per-pixel reductions run: the CPU, or the GPU its network runs on
    dense_ops: DenseOps

    @property
    def lookahead_frames(self) -> int:
        """Built-in latency, in frames (worst case)."""

    @property
    def has_ready(self) -> bool:
        """Blocks wait for :meth:`take_ready` (or a failure it raises)."""

    @property
    def n_submitted(self) -> int:
        """Frames ``0 .. n_submitted - 1`` become final once the work submitted is done."""

    @property
    def n_delivered(self) -> int:
        """Frames ``0 .. n_delivered - 1`` were returned, final, by push/take_ready/flush."""

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]: ...

    def take_ready(self) -> list[FinalBlock]: ...

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
        Most windows per ``predict`` of the detector's own batcher (without ``batcher``).
    batcher : WindowBatcher, optional
        Cross-stream batching (:mod:`engine.batching`, :attr:`shares_batcher`): whoever drives
        the streams runs its batches (``serve`` polls it), so ``push``/``flush`` return only the
        blocks completed so far and blocks completed later are taken with :meth:`take_ready`.
        Without it the detector has a batcher of its own and runs it before ``push`` returns:
        every block of a push comes back from that push. A batcher per stream costs nothing
        measurable next to ``predict`` (a few object allocations per window), and the windows
        of a push are grouped into the same ``predict`` calls as before batching existed.
    postprocess : PostprocessParams, optional
        Instead of the model directory's ``postprocess.json``.
    pixel_um, dt_ms : float, optional
        The stream's calibration: when the model's ``config.json`` asks for it
        (``calibration.resample_pixels``) and it lies outside the trained range, the network
        sees the stream resampled into that range (:mod:`engine.network_scale`).
    """

    def __init__(self, model: ModelDir, backend: Backend, mode: str,
                 frame_shape: tuple[int, ...], max_batch: int = 4,
                 batcher: WindowBatcher | None = None,
                 postprocess: PostprocessParams | None = None,
                 pixel_um: float | None = None, dt_ms: float | None = None,
                 dense_ops: DenseOps = CPU_OPS) -> None:
        self.dense_ops = dense_ops
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
        #: the windows' batcher is shared with other streams and run by whoever polls it
        self.shares_batcher = batcher is not None
        self.batcher = batcher if batcher is not None else WindowBatcher(max_batch, 0.0)
        self._n_submitted = 0  # frames the windows handed to the batcher make final (stop)
        self._n_delivered = 0  # frames push/take_ready/flush returned final (stop)
        self._n_queued = 0  # windows handed to the batcher and not yet run
        self.resampler, self.time_resampler, self.network_calibration = network_resamplers(
            model, self.geometry.frames, frame_shape, pixel_um, dt_ms)
        self._windower = Windower.from_geometry(self.geometry, self.resampler.network_shape)
        self._stitcher = Stitcher()
        self._ready: list[FinalBlock] = []
        self._batch_error: BaseException | None = None  # a failed batch of this stream

    @property
    def lookahead_frames(self) -> int:
        return self.geometry.lookahead_frames

    @property
    def n_submitted(self) -> int:
        return self._n_submitted

    @property
    def n_delivered(self) -> int:
        return self._n_delivered

    @property
    def has_ready(self) -> bool:
        """Blocks completed by the batcher are waiting for :meth:`take_ready` (or a batch of
        this stream failed: :meth:`take_ready` raises it)."""
        return bool(self._ready) or self._batch_error is not None

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]:
        x = self.resampler.to_network(network_input(dff0, self.normalization))
        return self._process(self._windower.push(first, x))

    def flush(self) -> list[FinalBlock]:
        blocks = self._process(self._windower.flush())
        if self._n_queued:  # windows still queued in a shared batcher
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
        if blocks:
            self._n_delivered = blocks[-1].stop
        return blocks

    def _process(self, windows: list) -> list[FinalBlock]:
        for window in windows:
            self._n_submitted = window.first_final + window.n_final
            self._n_queued += 1
            if self.time_resampler.identity:
                self.batcher.submit(self.backend, window, self._deliver, self._fail)
            else:  # the network's window is resampled in time; its probabilities come back
                seen = Window(window.start, self.time_resampler.to_network(window.data),
                              slice(0, 0))
                self.batcher.submit(self.backend, seen, partial(self._deliver_resampled, window),
                                    self._fail)
        if not self.shares_batcher:
            self.batcher.flush()
        return self.take_ready()

    def _deliver(self, window, probs: np.ndarray) -> None:
        self._n_queued -= 1
        blocks = self._stitcher.add(window, probs)
        if not self.resampler.identity:
            blocks = [FinalBlock(b.first, self.resampler.to_stream(b.probs)) for b in blocks]
        self._ready.extend(blocks)

    def _deliver_resampled(self, window, _seen, probs: np.ndarray) -> None:
        self._deliver(window, self.time_resampler.to_stream(probs))

    def _fail(self, error: BaseException) -> None:
        self._n_queued -= 1
        self._batch_error = self._batch_error or error


def network_resamplers(model: ModelDir, window_frames: int, frame_shape: tuple[int, ...],
                       pixel_um: float | None, dt_ms: float | None
                       ) -> tuple[SpatialResampler, TemporalResampler, dict | None]:
    """The stream's frames and windows as the network of ``model`` should see them (identity
    unless the model asks for ``calibration.resample_pixels`` and the calibration is off its
    trained range), and the calibration the network then sees (None: the stream's own)."""
    calibration = model.config.calibration
    trained = calibration.get("trained_range") if calibration.get("resample_pixels") else None
    seen_um = network_calibration(pixel_um, trained, "pixel_um") if pixel_um else 1.0
    seen_ms = network_calibration(dt_ms, trained, "dt_ms") if dt_ms else 1.0
    space = SpatialResampler(frame_shape, pixel_um or 1.0, seen_um)
    time = TemporalResampler(window_frames, dt_ms or 1.0, seen_ms)
    seen = (None if space.identity and time.identity
            else {"pixel_um": seen_um, "dt_ms": seen_ms})
    return space, time, seen


class ClassicalStreamDetector:
    """The classical detector over one stream (:class:`~engine.classical.ClassicalStream`);
    its look-ahead is the detector's ``lookahead_frames``. ``postprocess``: the tracker and
    characterization parameters (default: the code's); ``kwargs``: ClassicalParams overrides.

    It computes on the caller's thread, so its frames are delivered as soon as they are
    submitted (``n_submitted == n_delivered``) and nothing ever waits for :meth:`take_ready`."""

    has_ready = False  # every block comes back from the push/flush that finalized it

    def __init__(self, pixel_um: float, dt_ms: float, frame_shape: tuple[int, ...],
                 postprocess: PostprocessParams | None = None, dense_ops: DenseOps = CPU_OPS,
                 **kwargs) -> None:
        self.dense_ops = dense_ops
        self._detector = ClassicalDetector(pixel_um, dt_ms,
                                           StreamKind.from_item_shape(frame_shape),
                                           dense_ops=dense_ops, **kwargs)
        self.thresholds = self._detector.thresholds
        postprocess = PostprocessParams() if postprocess is None else postprocess
        self.tracker_config = postprocess.tracker_for("classical")
        self.characterize_config = postprocess.characterize
        self.preprocess: dict = {}
        self.trained_range = None  # no training: no trained range
        self.network_calibration = None  # no network
        self.name = "classical"
        self._stream = self._detector.stream()
        self._received = 0  # frames pushed so far
        self._next = 0  # next frame to finalize

    @property
    def lookahead_frames(self) -> int:
        return self._detector.lookahead_frames

    @property
    def n_submitted(self) -> int:
        return self._next

    @property
    def n_delivered(self) -> int:
        return self._next

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]:
        if first != self._received:
            raise ValueError(f"frames must arrive in order: got {first}, expected {self._received}")
        self._received += len(dff0)
        return self._blocks(self._stream.push(dff0))

    def take_ready(self) -> list[FinalBlock]:
        return []

    def flush(self) -> list[FinalBlock]:
        return self._blocks(self._stream.flush())

    def _blocks(self, probs: np.ndarray) -> list[FinalBlock]:
        if probs.shape[0] == 0:
            return []
        block = FinalBlock(self._next, probs)
        self._next += probs.shape[0]
        return [block]
