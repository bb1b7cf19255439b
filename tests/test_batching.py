"""Cross-stream window batching (engine/batching.py) and the automatic backend choice.

CPU only and fast: the batcher with a fake backend (full batches, bounded wait, order, keys),
batched detectors == unbatched ones, several streams served through one batcher == each stream
analyzed alone (onnxruntime: bit-exact whatever the batch), and ``make_backend("auto")`` with
CUDA / TensorRT mocked as present or absent.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import make_tiny_model_dir

import engine.backends as backends
from acquisition.ingest import ChunkReceived, StreamStarted, StreamStopped
from acquisition.simulate import LinescanParams, MovieParams, simulate_linescan, simulate_movie
from acquisition.stream_kind import StreamKind
from acquisition.wire import ChunkHeader, StartHeader, StopHeader
from engine.backends import BackendUnavailable, make_backend
from engine.backends.tensorrt_build import (
    BuildSpec,
    engine_file_name,
    gpu_cache_dir,
    network_flags,
)
from engine.batching import WindowBatcher
from engine.detectors import NetworkDetector
from engine.models import ModelDir
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array
from engine.serve import Server
from engine.sinks import SinkSet
from engine.windows import Window
from tests.serve_helpers import StubIngest

pytestmark = pytest.mark.usefixtures("isolated_cache")



class FakeBackend:
    """Probabilities = the input repeated on 4 channels; records every batch size."""

    name, device, reason = "fake", "cpu", ""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(batch.shape[0])
        return np.repeat(batch, 4, axis=1)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _window(start: int, frames: int = 8, width: int = 5) -> Window:
    data = np.full((frames, width), float(start), np.float32)
    return Window(start, data, slice(0, frames))


def test_full_batch_runs_at_submit_and_keeps_order() -> None:
    backend, got = FakeBackend(), []
    batcher = WindowBatcher(max_batch=3, max_wait_ms=1e6)
    for start in range(7):
        batcher.submit(backend, _window(start), lambda w, p: got.append((w.start, p[0, 0, 0])))
    assert backend.batch_sizes == [3, 3] and batcher.pending == 1
    assert got == [(s, float(s)) for s in range(6)]  # each window gets its own result, in order
    assert batcher.flush() == 1 and got[-1] == (6, 6.0)
    assert batcher.stats.windows == 7 and batcher.stats.full_batches == 2


def test_bounded_wait() -> None:
    clock, backend = Clock(), FakeBackend()
    batcher = WindowBatcher(max_batch=8, max_wait_ms=20, clock=clock)
    assert batcher.seconds_to_deadline() is None
    batcher.submit(backend, _window(0), lambda w, p: None)
    clock.t = 0.015
    batcher.submit(backend, _window(1), lambda w, p: None)
    assert batcher.poll() == 0 and backend.batch_sizes == []
    assert batcher.seconds_to_deadline() == pytest.approx(0.005)
    clock.t = 0.020
    assert batcher.poll() == 2 and backend.batch_sizes == [2]  # partial batch, both windows
    assert batcher.pending == 0 and batcher.seconds_to_deadline() is None


def test_queues_per_backend_and_shape() -> None:
    a, b = FakeBackend(), FakeBackend()
    batcher = WindowBatcher(max_batch=4, max_wait_ms=0)
    batcher.submit(a, _window(0), lambda w, p: None)
    batcher.submit(a, _window(1, width=6), lambda w, p: None)  # other shape: other batch
    batcher.submit(b, _window(2), lambda w, p: None)
    assert batcher.poll() == 3
    assert sorted(a.batch_sizes) == [1, 1] and b.batch_sizes == [1]


def test_invalid_batcher() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        WindowBatcher(max_batch=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_batched_detector_equals_unbatched(tmp_path: Path, ndim: int) -> None:
    model = ModelDir.load(make_tiny_model_dir(tmp_path / "m", ndim, seed=3))
    backend = make_backend(model, "onnxruntime", options={"onnxruntime": {"num_threads": 1}})
    shape = (24,) if ndim == 2 else (8, 16)
    data = np.random.default_rng(1).normal(0, 0.5, (150, *shape)).astype(np.float32)
    batcher = WindowBatcher(max_batch=3, max_wait_ms=1e6)
    plain = NetworkDetector(model, backend, "accurate", shape)
    batched = [NetworkDetector(model, backend, "accurate", shape, batcher=batcher)
               for _ in range(2)]  # two streams share the batcher
    blocks: dict[str, list] = {"plain": [], "b0": [], "b1": []}
    for first in range(0, 150, 37):
        blocks["plain"] += plain.push(first, data[first:first + 37])
        for i, det in enumerate(batched):
            blocks[f"b{i}"] += det.push(first, data[first:first + 37])
    blocks["plain"] += plain.flush()
    for i, det in enumerate(batched):
        blocks[f"b{i}"] += det.flush() + det.take_ready()
    assert batcher.stats.mean_batch > 1
    for key in ("b0", "b1"):
        assert [b.first for b in blocks[key]] == [b.first for b in blocks["plain"]]
        for x, y in zip(blocks[key], blocks["plain"], strict=True):
            np.testing.assert_array_equal(x.probs, y.probs)


def _serve_interleaved(config: EngineConfig, streams: dict[str, np.ndarray],
                       stream_kind: StreamKind,
                       pixel_um: float, dt_ms: float, blank: float,
                       chunk: int) -> dict[str, list]:
    """Feed all streams chunk by chunk, round robin, through one in-process Server."""
    factory = DetectorFactory(config)
    server = Server(StubIngest(), factory, SinkSet([]))
    for name, data in streams.items():
        server.handle(StreamStarted(StartHeader(name, stream_kind.wire_mode, "uint16", data.shape[1:],
                                                pixel_um, dt_ms, blank=blank)))
    n = max(d.shape[0] for d in streams.values())
    for seq, first in enumerate(range(0, n, chunk)):
        for name, data in streams.items():
            part = data[first:first + chunk]
            server.handle(ChunkReceived(ChunkHeader(name, seq + 1, first, len(part), 0), part))
        server.poll_batches()
    for name in streams:
        server.handle(StreamStopped(StopHeader(name, 10_000), None))
    assert factory.batcher is not None and factory.batcher.pending == 0
    assert factory.batcher.stats.mean_batch > 1  # windows of different streams ran together
    factory.close()
    return {name: [e.to_dict() for e in done["events"]] for name, done in server.finished.items()}


@pytest.mark.parametrize("kind", ["linescan", "movie"])
def test_streams_batched_equal_alone(tmp_path: Path, kind: str) -> None:
    """Several streams through one batcher (max_batch > 1) give exactly each stream's events
    analyzed alone (onnxruntime: bit-exact whatever the batch)."""
    ndim = 2 if kind == "linescan" else 3
    model = make_tiny_model_dir(tmp_path / "m", ndim, behaviour="threshold", threshold_dff0=0.3)
    if kind == "linescan":
        rec = simulate_linescan(LinescanParams(n_lines=900, n_pixels=256), seed=5)
        chunk = 61
    else:
        rec = simulate_movie(MovieParams(n_frames=110, n_y=16, n_x=64), seed=6)
        chunk = 9
    streams = {f"s{i}": np.roll(rec.data, 37 * i, axis=0) for i in range(3)}
    config = EngineConfig(model=model, backend="onnxruntime", batch=True, max_batch=4,
                          max_wait_ms=1e6)
    served = _serve_interleaved(config, streams, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                                rec.blank, chunk)
    alone_config = EngineConfig(model=model, backend="onnxruntime", batch=False)
    n_events = 0
    for name, data in streams.items():
        alone = analyze_array(data, rec.stream_kind, rec.pixel_um, rec.dt_ms, blank=rec.blank,
                              factory=DetectorFactory(alone_config), stream=name, cell=name)
        expected = sorted((e.to_dict() for e in alone.events), key=lambda e: e["event_id"])
        got = sorted(served[name], key=lambda e: e["event_id"])
        assert len(got) == len(expected), name
        for a, b in zip(got, expected, strict=True):
            assert a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a), (a, b)
        n_events += len(expected)
    assert n_events > 0, "the recordings should contain detectable events"


def _same_value(a, b) -> bool:
    """Exact equality, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# -- automatic backend choice ---------------------------------------------------------------
def _mock_build(monkeypatch: pytest.MonkeyPatch, fail_tensorrt: bool = False) -> list:
    built: list = []

    def build(model, name, device, options):
        if name == "tensorrt" and fail_tensorrt:
            raise BackendUnavailable("engine build failed")
        built.append((name, device))
        return types.SimpleNamespace(name=name, device=device, reason="")

    monkeypatch.setattr(backends, "_build", build)
    return built


@pytest.mark.parametrize(("cuda", "trt", "fail", "expected", "reason"), [
    (False, False, False, ("onnxruntime", "cpu"), "no GPU"),
    (False, True, False, ("onnxruntime", "cpu"), "no GPU"),
    (True, False, False, ("torch", "cuda"), "TensorRT not installed"),
    (True, True, True, ("torch", "cuda"),
     "TensorRT unusable: BackendUnavailable: engine build failed"),
    (True, True, False, ("tensorrt", "cuda"), "TensorRT available"),
])
def test_auto_backend_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda: bool,
                            trt: bool, fail: bool, expected: tuple, reason: str) -> None:
    monkeypatch.setattr(backends, "_cuda_available", lambda: cuda)
    monkeypatch.setattr(backends, "_tensorrt_available", lambda: trt)
    built = _mock_build(monkeypatch, fail_tensorrt=fail)
    backend = make_backend(make_tiny_model_dir(tmp_path / "m", 2))
    assert (backend.name, backend.device) == expected == built[-1]
    assert backend.reason.startswith("auto:") and reason in backend.reason


def test_batching_default_follows_device(tmp_path: Path) -> None:
    """``batch=None`` batches only CUDA backends; ``batch=True`` forces it on CPU."""
    model = make_tiny_model_dir(tmp_path / "m", 2)
    info_kwargs = {"stream_kind": StreamKind.LINESCAN, "frame_shape": (32,), "pixel_um": 0.14, "dt_ms": 1.5}
    from engine.analyzer import StreamInfo

    info = StreamInfo("s", **info_kwargs)
    auto = DetectorFactory(EngineConfig(model=model, backend="onnxruntime"))
    own = auto.detector(info)  # its own batcher, run before push returns
    assert not own.shares_batcher and own.batcher is not auto.batcher
    forced = DetectorFactory(EngineConfig(model=model, backend="onnxruntime", batch=True))
    shared = forced.detector(info)
    assert shared.shares_batcher and shared.batcher is forced.batcher is not None
    assert DetectorFactory(EngineConfig(model=model, batch=False)).batcher is None


# -- TensorRT plumbing that needs no GPU ----------------------------------------------------
def test_tensorrt_unavailable_here_is_clear(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if backends._tensorrt_available():
        pytest.skip("tensorrt is installed here; covered by tests/test_tensorrt_backend.py")
    with pytest.raises(BackendUnavailable, match="'tensorrt' Python package is not installed"):
        make_backend(make_tiny_model_dir(tmp_path / "m", 2), "tensorrt")


def test_tensorrt_cache_key(tmp_path: Path) -> None:
    spec = BuildSpec(tmp_path / "m.onnx", (1, 128, 64, 512), "fp16", opt_batch=8, max_batch=32)
    folder = gpu_cache_dir("NVIDIA H200", (9, 0), "10.3.0")
    assert folder == tmp_path / "cache" / "tensorrt" / "nvidia-h200-sm90-trt10.3.0"
    assert engine_file_name(spec, "abc") == "abc-fp16-128x64x512-b1-8-32.engine"
    assert spec.profile(4) == (4, 1, 128, 64, 512)
    with pytest.raises(ValueError, match="precision"):
        BuildSpec(tmp_path / "m.onnx", (1, 8), "fp8")
    with pytest.raises(ValueError, match="opt_batch"):
        BuildSpec(tmp_path / "m.onnx", (1, 8), opt_batch=64, max_batch=32)


def test_network_flags_by_tensorrt_version() -> None:
    """10.x: no flag (explicit batch is the only mode), STRONGLY_TYPED for strong typing; 11.x:
    no flag either way (strong typing is the only mode); 8.x is refused."""
    flags = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt10 = types.SimpleNamespace(__version__="10.3.0", NetworkDefinitionCreationFlag=flags)
    assert network_flags(trt10) == 0 and network_flags(trt10, "strong") == 2
    assert network_flags(types.SimpleNamespace(__version__="11.1.0"), "strong") == 0
    with pytest.raises(BackendUnavailable, match="not supported"):
        network_flags(types.SimpleNamespace(__version__="8.6.1"), "strong")
