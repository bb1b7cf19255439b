"""Wiring: which detector and model a stream gets, and the batch entry point ``analyze_array``.

:class:`EngineConfig` says what to run (model directory or the packaged default, mode,
backend, detector); :class:`DetectorFactory` loads each model and builds its backend once,
then makes a fresh detector per stream. ``serve`` (:mod:`engine.serve`) and ``analyze``
(:mod:`engine.commands.analyze`) both go through :class:`~engine.analyzer.StreamAnalyzer`,
and so does :func:`analyze_array`, which evaluation uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acquisition.stream_kind import StreamKind

from .analyzer import StreamAnalyzer, StreamInfo
from .batching import WindowBatcher
from .cellclass import CellClassifier, CellSummary
from .dense_ops import CPU_OPS, DenseOps, dense_ops_for
from .detectors import ClassicalStreamDetector, Detector, NetworkDetector
from .events import Event
from .hybrid import HybridDetector, HybridParams
from .kind_rules import KEYS as KIND_RULE_KEYS
from .models.model_dir import DEFAULT_ROOT, ModelDir, default_model_path
from .models.postprocess_file import PostprocessParams
from .tails import TAIL_KEY
from .windows import MODES

log = logging.getLogger(__name__)

DETECTORS = ("auto", "network", "classical", "hybrid")
DENSE_DEVICES = ("auto", "cpu")
DEFAULT_CLASSIFIER = DEFAULT_ROOT / "cell_classifier"


@dataclass
class EngineConfig:
    """What the engine runs.

    ``model`` is a model directory, or ``None`` for the packaged default of the stream's kind;
    ``detector="auto"`` uses the network when a model is available and falls back to the
    classical detector (with a warning) when none fits.
    """

    model: Path | None = None
    mode: str = "accurate"
    backend: str = "auto"
    device: str | None = None
    detector: str = "auto"
    thresholds: dict | None = None  # overrides of the model's thresholds.json
    classifier: Path | None = None  # cell classifier dir; None → packaged default if present
    batch: bool | None = None  # cross-stream window batching; None → on for CUDA backends
    max_batch: int = 32  # windows per batch (and TensorRT profile max)
    max_wait_ms: float = 10.0  # longest a window waits for a batch to fill
    backend_options: dict | None = None  # per backend name: constructor kwargs (make_backend)
    hybrid: HybridParams | None = None  # fusion parameters instead of the model's hybrid.json
    #: tracker and characterization parameters instead of the model's postprocess.json
    postprocess: PostprocessParams | None = None
    #: where a stream's per-pixel reductions run (:mod:`engine.dense_ops`): "auto" on the GPU
    #: its network runs on, if it runs on one; "cpu" always on the CPU (the same numbers)
    dense_device: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        if self.dense_device not in DENSE_DEVICES:
            raise ValueError(f"dense_device must be one of {DENSE_DEVICES}, "
                             f"got {self.dense_device!r}")
        if "split_dip_sd" in (self.thresholds or {}):
            raise ValueError("split_dip_sd is a postprocess.json parameter now: pass "
                             "EngineConfig(postprocess=...) instead of a threshold")


@dataclass
class _Loaded:
    model: ModelDir
    backend: object


class DetectorFactory:
    """Loads models and backends once; makes one detector per stream.

    ``batcher``: the :class:`~engine.batching.WindowBatcher` shared by the network detectors
    whose backend batches (``config.batch`` True, or None and the backend runs on CUDA);
    ``None`` when ``config.batch`` is False. Whoever drives the analyzers polls it (``serve``).
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._loaded: dict[StreamKind, _Loaded | None] = {}
        self._ops: dict[str, DenseOps] = {}  # per backend device (:meth:`_dense_ops`)
        self.classifier = self._load_classifier()
        self.batcher = (WindowBatcher(config.max_batch, config.max_wait_ms)
                        if config.batch is not False else None)

    def describe(self, info: StreamInfo) -> dict:
        """Model/backend/reason a stream of this kind gets (for the store and the dashboard)."""
        loaded = self._get(info.stream_kind)
        if loaded is None:
            return {"model": "classical", "backend": "numpy",
                    "backend_reason": "no network model for this kind of stream"}
        return {"model": loaded.model.config.name or str(loaded.model.path),
                "backend": f"{loaded.backend.name}:{loaded.backend.device}",
                "backend_reason": getattr(loaded.backend, "reason", "")}

    def detector(self, info: StreamInfo) -> Detector:
        """A fresh detector for one stream."""
        loaded = self._get(info.stream_kind)
        overrides = dict(self.config.thresholds or {})
        postprocess = self.config.postprocess
        if loaded is None:  # its probability scale is its own: only the event overrides apply
            return _with_event_overrides(ClassicalStreamDetector(
                info.pixel_um, info.dt_ms, info.frame_shape, postprocess), overrides)
        ops = self._dense_ops(loaded.backend)
        detector = NetworkDetector(loaded.model, loaded.backend, self.config.mode,
                                   info.frame_shape, batcher=self._batcher_for(loaded.backend),
                                   postprocess=postprocess, pixel_um=info.pixel_um,
                                   dt_ms=info.dt_ms, dense_ops=ops)
        self._prepare(loaded, detector.time_resampler.network_frames,
                      detector.resampler.network_shape)
        detector.thresholds.update(overrides)
        params = self._hybrid_params(loaded)
        if params is None:
            return detector
        classical = ClassicalStreamDetector(info.pixel_um, info.dt_ms, info.frame_shape,
                                            dense_ops=ops, **params.classical)
        return _with_event_overrides(HybridDetector(detector, classical, params), overrides)

    def _dense_ops(self, backend) -> DenseOps:
        """The per-pixel reductions on the backend's GPU (``dense_device`` "auto"), else on
        the CPU; one set per backend, shared by its streams (they hold no state)."""
        if self.config.dense_device == "cpu":
            return CPU_OPS
        key = str(backend.device)
        if key not in self._ops:
            self._ops[key] = dense_ops_for(key)
        return self._ops[key]

    def _prepare(self, loaded: _Loaded, frames: int, frame_shape: tuple[int, ...]) -> None:
        """Build what the backend needs for this stream's windows now, at the stream's start
        (e.g. the TensorRT engine of its window shape), not inside its first ``predict``; a
        failure fails this stream alone (``serve`` isolates it)."""
        from .backends import prepare_backend

        prepare_backend(loaded.backend, (1, frames, *frame_shape))

    def _hybrid_params(self, loaded: _Loaded) -> HybridParams | None:
        """Fusion parameters when the stream gets the hybrid detector (``hybrid``, or ``auto``
        with a model directory that has ``hybrid.json``), else None."""
        if self.config.detector not in ("auto", "hybrid"):
            return None
        if self.config.hybrid is not None:
            return self.config.hybrid
        params = HybridParams.load(loaded.model.path)
        if params is None and self.config.detector == "hybrid":
            params = HybridParams()
        return params

    def load_models(self) -> list[StreamKind]:
        """Load now every model and backend a stream may need (the configured model, or the
        packaged default of each kind of stream), so that the first chunk of a stream is
        analysed without loading delay (``serve`` calls it at start-up). Returns the kinds
        that have a network model."""
        if self.config.detector != "classical" and self.config.model is not None:
            loaded = self._open(Path(self.config.model))
            if loaded.model.config.stream_kind in self._loaded:  # loaded before
                loaded.backend.close()
            else:
                self._loaded[loaded.model.config.stream_kind] = loaded
        else:
            for kind in StreamKind.time_series():
                try:
                    self._get(kind)
                except Exception as exc:  # noqa: BLE001 - retried (and isolated) per stream
                    log.error("cannot load the %s model at start-up (%s); streams of that "
                              "kind will try again and fail alone", kind.value, exc)
        return [kind for kind in StreamKind.time_series() if self._loaded.get(kind) is not None]

    def preload(self, kind: StreamKind, model: ModelDir, backend) -> None:
        """Use ``model`` run by ``backend`` for streams of ``kind`` instead of loading one
        (tuning runs share one backend between factories)."""
        self._loaded[kind] = _Loaded(model, backend)

    def _batcher_for(self, backend) -> WindowBatcher | None:
        if self.config.batch is None and not str(backend.device).startswith("cuda"):
            return None
        return self.batcher

    def analyzer(self, info: StreamInfo, keep_labels: bool = False) -> StreamAnalyzer:
        return StreamAnalyzer(info, self.detector(info), self.classifier, keep_labels)

    def close(self) -> None:
        for loaded in self._loaded.values():
            if loaded is not None:
                loaded.backend.close()

    def _get(self, kind: StreamKind) -> _Loaded | None:
        if kind not in self._loaded:
            self._loaded[kind] = self._load(kind)
        return self._loaded[kind]

    def _load(self, kind: StreamKind) -> _Loaded | None:
        if self.config.detector == "classical":
            return None
        try:
            path = self.config.model or default_model_path(kind, self.config.mode)
        except FileNotFoundError as exc:
            if self.config.detector == "network":
                raise
            log.warning("%s; falling back to the classical detector", exc)
            return None
        return self._open(path, kind)

    def _open(self, path: Path, kind: StreamKind | None = None) -> _Loaded:
        """Model directory ``path`` and its backend (the model must be for ``kind``)."""
        from .backends import make_backend

        model = ModelDir.load(path)
        if kind is not None and model.config.stream_kind is not kind:
            raise ValueError(f"model {path} is for {model.config.stream_kind.value} data, "
                             f"but the stream is a {kind.value}")
        options = {name: dict(kwargs) for name, kwargs in
                   (self.config.backend_options or {}).items()}
        options.setdefault("tensorrt", {}).setdefault("max_batch", self.config.max_batch)
        if self.batcher is not None:  # torch CUDA: batches padded to sizes warmed at the start
            options.setdefault("torch", {}).setdefault("max_batch", self.config.max_batch)
        return _Loaded(model, make_backend(model, self.config.backend, self.config.device,
                                           options))

    def _load_classifier(self) -> CellClassifier | None:
        path = self.config.classifier or DEFAULT_CLASSIFIER
        if not (Path(path) / "config.json").is_file():
            if self.config.classifier is not None:
                raise FileNotFoundError(f"no cell classifier in {path}")
            log.info("no packaged cell classifier; cells are not classified")
            return None
        return CellClassifier.load(path)


#: configured thresholds that apply whatever the detector (its own probability scale aside)
EVENT_OVERRIDES = ("min_significance", *KIND_RULE_KEYS, TAIL_KEY)


def _with_event_overrides(detector: Detector, overrides: dict) -> Detector:
    """``detector`` with the configured :data:`EVENT_OVERRIDES` (those given; ``None`` removes
    the model's value)."""
    for key in EVENT_OVERRIDES:
        if key in overrides and overrides[key] is None:
            detector.thresholds.pop(key, None)
        elif key in overrides:
            detector.thresholds[key] = float(overrides[key])
    return detector


@dataclass
class AnalysisResult:
    """Everything :func:`analyze_array` found in one recording."""

    info: StreamInfo
    events: list[Event]
    labels: np.ndarray | None
    cell: CellSummary | None
    lookahead_ms: float
    delay_ms_p50: float
    delay_ms_p99: float
    detector: str = ""
    extra: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)  # the recording's quality report


def run_stream(analyzer: StreamAnalyzer, chunks, labels_out=None) -> list[Event]:
    """Feed ``(first, frames)`` chunks to ``analyzer``; labels go to ``labels_out.write``."""
    events: list[Event] = []
    for first, frames in chunks:
        events += analyzer.push(first, frames)
        _drain_labels(analyzer, labels_out)
    events += analyzer.finish()
    _drain_labels(analyzer, labels_out)
    return events


def _drain_labels(analyzer: StreamAnalyzer, labels_out) -> None:
    if labels_out is None:
        return
    while (block := analyzer.pop_labels()) is not None:
        labels_out.write(*block)


class _ArrayLabels:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.array = np.zeros(shape, np.int32)

    def write(self, first: int, labels: np.ndarray) -> None:
        self.array[first:first + labels.shape[0]] = labels.reshape(
            (labels.shape[0], *self.array.shape[1:]))


def analyze_array(data: np.ndarray, stream_kind: StreamKind, pixel_um: float, dt_ms: float,
                  model_dir: str | Path | None = None, mode: str = "accurate",
                  backend: str = "auto", blank: float | None = None,
                  detector: str = "auto", thresholds: dict | None = None,
                  chunk_frames: int = 256, factory: DetectorFactory | None = None,
                  stream: str = "array", cell: str = "",
                  postprocess: PostprocessParams | None = None) -> AnalysisResult:
    """Run the streaming engine over an in-memory recording: a line-scan ``(T, X)`` or a movie
    ``(T, Y, X)`` (``stream_kind``); ``thresholds`` and ``postprocess`` override the model
    directory's (without ``factory``)."""
    if stream_kind not in StreamKind.time_series():
        raise ValueError(f"stream_kind must be StreamKind.LINESCAN or MOVIE, got {stream_kind!r}")
    if data.ndim != stream_kind.item_ndim + 1:
        raise ValueError(f"a {stream_kind.value} is ({', '.join(stream_kind.axes)}), not data "
                         f"of shape {data.shape}")
    factory = factory or DetectorFactory(EngineConfig(
        model=Path(model_dir) if model_dir else None, mode=mode, backend=backend,
        detector=detector, thresholds=thresholds, postprocess=postprocess))
    info = StreamInfo(stream, stream_kind, tuple(data.shape[1:]), pixel_um, dt_ms, blank, cell)
    analyzer = factory.analyzer(info, keep_labels=True)
    labels = _ArrayLabels(data.shape)
    chunks = ((i, data[i:i + chunk_frames]) for i in range(0, data.shape[0], chunk_frames))
    events = run_stream(analyzer, chunks, labels)
    p50, p99 = analyzer.stats.delay_percentiles()
    return AnalysisResult(info, events, labels.array, analyzer.cell_summary,
                          analyzer.lookahead_ms, p50, p99, analyzer.detector.name,
                          quality=analyzer.quality_report())
