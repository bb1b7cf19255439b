"""Backends that fail: ``auto`` falls back when building one raises anything (reason logged,
kept on the backend and in the factory's ``describe``), and a backend failing while a stream
runs (in ``predict``, batched or not, or in ``prepare`` at the stream's start) fails that
stream alone: ``serve`` goes on with the others."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import make_tiny_model_dir

import engine.backends as backends
from acquisition.simulate import LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from engine.analyzer import StreamInfo
from engine.backends import make_backend
from engine.backends.onnxruntime_backend import OnnxRuntimeBackend
from engine.models import ModelDir
from engine.pipeline import DetectorFactory, EngineConfig
from engine.serve import Server
from engine.sinks import SinkSet
from tests.serve_helpers import MemorySink, StubIngest, chunk_item, start_item, stop_item
from tests.test_tensorrt_versions import fake_tensorrt

pytestmark = pytest.mark.usefixtures("isolated_cache")



# -- auto falls back at build time ----------------------------------------------------------
def test_auto_falls_back_on_any_build_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """An engine build raising AttributeError (what TensorRT 11 did to the old code) is
    passed over like BackendUnavailable; the reason is logged and kept."""
    monkeypatch.setattr(backends, "_cuda_available", lambda: True)
    monkeypatch.setattr(backends, "_tensorrt_available", lambda: True)

    def build(model, name, device, options):
        if name == "tensorrt":
            raise AttributeError("type object 'BuilderFlag' has no attribute 'FP16'")
        return types.SimpleNamespace(name=name, device=device, reason="")

    monkeypatch.setattr(backends, "_build", build)
    with caplog.at_level(logging.WARNING, logger="engine.backends"):
        backend = make_backend(make_tiny_model_dir(tmp_path / "m", 2))
    assert (backend.name, backend.device) == ("torch", "cuda")
    assert "TensorRT unusable: AttributeError: type object 'BuilderFlag'" in backend.reason
    assert any("TensorRT unusable" in r.message for r in caplog.records)


def test_auto_chain_to_cpu_with_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real constructors, a fake TensorRT 11 and a CUDA that torch claims but cannot use:
    TensorRT and torch-on-GPU both fail to build, onnxruntime on CPU is chosen, and the
    factory's ``describe`` says why."""
    monkeypatch.setattr(backends, "_cuda_available", lambda: True)
    monkeypatch.setattr(backends, "_tensorrt_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("11.0.0"))
    if __import__("torch").cuda.is_available():
        pytest.skip("a real GPU is present: torch on GPU would build")
    model = make_tiny_model_dir(tmp_path / "m", 2)
    factory = DetectorFactory(EngineConfig(model=model))
    info = StreamInfo("s", StreamKind.LINESCAN, (64,), 0.14, 1.5)
    described = factory.describe(info)
    assert described["backend"] == "onnxruntime:cpu"
    reason = described["backend_reason"]
    assert reason.startswith("auto: onnxruntime on CPU")
    assert "TensorRT unusable: BackendUnavailable" in reason
    assert "torch on GPU unusable: BackendUnavailable" in reason
    factory.close()


def test_no_backend_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(model, name, device, options):
        raise RuntimeError(f"{name} broken")

    monkeypatch.setattr(backends, "_cuda_available", lambda: False)
    monkeypatch.setattr(backends, "_build", build)
    with pytest.raises(backends.BackendUnavailable, match="no backend could be built.*torch broken"):
        make_backend(make_tiny_model_dir(tmp_path / "m", 2))


# -- failures while streams run -------------------------------------------------------------
class FlakyBackend:
    """onnxruntime, except that windows ``bad_width`` pixels wide raise (in ``predict``, or in
    ``prepare`` at the stream's start)."""

    name, device, reason = "flaky", "cpu", "test"

    def __init__(self, model: ModelDir, bad_width: int, where: str) -> None:
        self.inner = OnnxRuntimeBackend(model)
        self.bad_width, self.where = bad_width, where
        self.prepared: list[tuple[int, ...]] = []

    def prepare(self, item_shape: tuple[int, ...]) -> None:
        self.prepared.append(item_shape)
        if self.where == "prepare" and item_shape[-1] == self.bad_width:
            raise RuntimeError("engine build failed for this window shape")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self.where == "predict" and batch.shape[-1] == self.bad_width:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.predict(batch)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("where", ["predict", "prepare"])
@pytest.mark.parametrize("batch", [False, True])
def test_failing_backend_fails_one_stream(tmp_path: Path, where: str, batch: bool) -> None:
    model_path = make_tiny_model_dir(tmp_path / "m", 2, behaviour="threshold",
                                     threshold_dff0=0.3)
    model = ModelDir.load(model_path)
    good = simulate_linescan(LinescanParams(n_lines=600, n_pixels=64), seed=5)
    bad = simulate_linescan(LinescanParams(n_lines=600, n_pixels=48), seed=6)
    factory = DetectorFactory(EngineConfig(model=model_path, batch=batch, max_batch=4,
                                           max_wait_ms=0.0))
    backend = FlakyBackend(model, bad_width=48, where=where)
    factory.preload(StreamKind.LINESCAN, model, backend)
    sink = MemorySink()
    server = Server(StubIngest(), factory, SinkSet([sink]))
    streams = {"good": good.data, "bad": bad.data}
    for name, data in streams.items():
        server.handle(start_item(name, data, good.pixel_um, good.dt_ms, good.blank))
    for seq, first in enumerate(range(0, 600, 50)):
        for name, data in streams.items():
            server.handle(chunk_item(name, seq + 1, first, data[first:first + 50]))
        server.poll_batches()  # never raises, whatever the backend does
    for name in streams:
        server.handle(stop_item(name, 600))
    assert set(server.failed) == {"bad"}
    assert ("illegal memory access" if where == "predict" else "engine build failed") \
        in server.failed["bad"]
    assert "good" in server.finished and server.finished["good"]["n_events"] > 0
    if where == "predict":  # failed while live: its last statistics sample says why
        assert sink.stats["bad"][-1]["failed"] == server.failed["bad"]
    assert (1, 32, 64) in backend.prepared  # prepared at the start, before any predict
    if batch:
        assert factory.batcher.stats.failed_batches >= (1 if where == "predict" else 0)
    factory.close()
