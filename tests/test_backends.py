"""Backends: torch vs onnxruntime parity, make_backend choices and errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_models import make_tiny_model_dir

from engine.backends import Backend, BackendUnavailable, make_backend
from engine.backends.onnxruntime_backend import OnnxRuntimeBackend, pad_to_multiple
from engine.backends.torch_backend import TorchBackend
from engine.models import ModelDir

pytestmark = pytest.mark.usefixtures("isolated_cache")

torch.set_num_threads(1)
PARITY_ATOL = 1e-4  # max |p_torch - p_onnxruntime| over all probabilities



@pytest.mark.parametrize(("ndim", "shape"), [(2, (3, 1, 32, 50)), (3, (2, 1, 16, 20, 36))])
def test_parity_torch_onnxruntime(tmp_path: Path, ndim: int, shape: tuple[int, ...]) -> None:
    model = ModelDir.load(make_tiny_model_dir(tmp_path / "m", ndim, seed=1))
    batch = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    p_torch = TorchBackend(model).predict(batch)
    ort_backend = OnnxRuntimeBackend(model)
    p_ort = ort_backend.predict(batch)
    assert p_torch.shape == p_ort.shape == (shape[0], 4, *shape[2:])
    assert p_ort.dtype == np.float32
    np.testing.assert_allclose(p_torch.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p_torch, p_ort, atol=PARITY_ATOL)
    assert ort_backend.onnx_path.parent == tmp_path / "cache" / "onnx"  # exported once, cached
    assert OnnxRuntimeBackend(model).onnx_path == ort_backend.onnx_path


def test_onnx_from_model_dir(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2, with_onnx=True)
    backend = OnnxRuntimeBackend(path)
    assert backend.onnx_path == path / "model.onnx"
    assert isinstance(backend, Backend)


def test_threshold_model_detects_bright_pixels(tmp_path: Path) -> None:
    model = make_tiny_model_dir(tmp_path / "m", 2, behaviour="threshold", threshold_dff0=0.5)
    batch = np.zeros((1, 1, 16, 20), np.float32)
    batch[0, 0, 5:8, 10:13] = 1.0
    probs = make_backend(model, "onnxruntime").predict(batch)
    np.testing.assert_array_equal(probs[0, 1] > 0.5, batch[0, 0] > 0.5)


def test_make_backend_choices(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2)
    auto = make_backend(path)
    if torch.cuda.is_available():  # TensorRT when installed (tests/test_batching.py mocks it)
        assert auto.name in ("tensorrt", "torch") and auto.device == "cuda"
    else:
        assert (auto.name, auto.device) == ("onnxruntime", "cpu")
    assert auto.reason.startswith("auto:")
    explicit = make_backend(path, "torch", device="cpu")
    assert explicit.name == "torch" and "explicitly" in explicit.reason
    explicit.close()


def test_make_backend_errors(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2)
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match="TensorRT backend not available"):
            make_backend(path, "tensorrt")
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend(path, "tflite")
    with pytest.raises(ValueError, match="device"):
        make_backend(path, "torch", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA"):
            make_backend(path, "torch", device="cuda")
    backend = make_backend(path, "torch", device="cpu")
    with pytest.raises(ValueError, match="batch must be"):
        backend.predict(np.zeros((1, 2, 16, 20), np.float32))


def test_pad_to_multiple() -> None:
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(1, 2, 5, 3)
    out = pad_to_multiple(x, (4, 4))
    assert out.shape == (1, 2, 8, 4)
    np.testing.assert_array_equal(out[..., :5, :3], x)
    assert pad_to_multiple(x, (5, 3)) is x


@pytest.mark.parametrize("ndim", [2, 3])
def test_onnxruntime_batch_invariant(tmp_path: Path, ndim: int) -> None:
    """A window's probabilities do not depend on what it was batched with (streaming vs file
    analysis batch windows differently)."""
    backend = OnnxRuntimeBackend(make_tiny_model_dir(tmp_path / "m", ndim))
    shape = (3, 1, 16, 24) if ndim == 2 else (3, 1, 16, 8, 24)
    batch = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    together = backend.predict(batch)
    for i in range(shape[0]):
        np.testing.assert_array_equal(together[i:i + 1], backend.predict(batch[i:i + 1]))
