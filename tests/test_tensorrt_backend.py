"""TensorRT backend on a CUDA GPU: probabilities match the torch CPU reference within the stated
tolerance, engines are cached per GPU/TensorRT/model/shape, CUDA graphs replay correctly, and a
test recording gives the same events as the CPU reference. Marked ``tensorrt`` and ``gpu``:
excluded from the default suite, skipped (with the reason) without TensorRT or a CUDA device.
Run on a GPU machine with ``pytest -m "tensorrt or gpu" tests/test_tensorrt_backend.py``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import make_tiny_model_dir

torch = pytest.importorskip("torch")
pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt)")

pytestmark = [
    pytest.mark.usefixtures("isolated_cache"),
    pytest.mark.tensorrt, pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)"),
]

ATOL = {"fp32": 1e-3, "fp16": 2e-2}  # max |p_tensorrt - p_torch_cpu| over all probabilities
SCORE_ATOL = 2e-2  # event detection scores (mean probabilities) in fp16



def _reference(path: Path, batch: np.ndarray) -> np.ndarray:
    from engine.backends.torch_backend import TorchBackend

    return TorchBackend(path).predict(batch)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_parity_with_torch_cpu(tmp_path: Path, ndim: int, precision: str,
                               cuda_graphs: bool) -> None:
    from engine.backends.tensorrt_backend import TensorRTBackend

    path = make_tiny_model_dir(tmp_path / "m", ndim, seed=2)
    shape = (5, 1, 32, 50) if ndim == 2 else (5, 1, 32, 20, 36)  # spatial not multiples: padded
    batch = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
    backend = TensorRTBackend(path, precision=precision, max_batch=4, opt_batch=2,
                              cuda_graphs=cuda_graphs)
    got = backend.predict(batch)  # 5 > max_batch: two slices
    assert got.shape == (5, 4, *shape[2:]) and got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(path, batch), atol=ATOL[precision])
    np.testing.assert_allclose(backend.predict(batch[:3]), got[:3], atol=1e-6)
    backend.close()


def test_engine_cache_reused(tmp_path: Path) -> None:
    from engine.backends.tensorrt_backend import TensorRTBackend

    path = make_tiny_model_dir(tmp_path / "m", 2, seed=3)
    batch = np.zeros((1, 1, 32, 64), np.float32)
    first = TensorRTBackend(path, max_batch=2)
    first.predict(batch)
    [engine_path] = first.engine_paths
    assert engine_path.is_relative_to(tmp_path / "cache" / "tensorrt")
    assert (engine_path.parent / "timing.cache").is_file()
    mtime = engine_path.stat().st_mtime_ns
    second = TensorRTBackend(path, max_batch=2)
    second.predict(batch)
    assert second.engine_paths == [engine_path] and engine_path.stat().st_mtime_ns == mtime


def test_same_events_as_cpu_reference(tmp_path: Path) -> None:
    from acquisition.simulate import MovieParams, simulate_movie
    from engine.pipeline import DetectorFactory, EngineConfig, analyze_array

    model = make_tiny_model_dir(tmp_path / "m", 3, behaviour="threshold", threshold_dff0=0.3)
    rec = simulate_movie(MovieParams(n_frames=120, n_y=32, n_x=128), seed=12)
    devices = {"torch": "cpu", "tensorrt": "cuda"}
    runs = {name: analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, blank=rec.blank,
                                factory=DetectorFactory(EngineConfig(
                                    model=model, backend=name, device=device))).events
            for name, device in devices.items()}
    assert len(runs["torch"]) > 0 and len(runs["tensorrt"]) == len(runs["torch"])
    for a, b in zip(runs["torch"], runs["tensorrt"], strict=True):
        da, db = a.to_dict(), b.to_dict()
        assert math.isclose(da.pop("score"), db.pop("score"), abs_tol=SCORE_ATOL)
        assert da.keys() == db.keys()
        for key in da:
            assert da[key] == db[key] or (da[key] != da[key] and db[key] != db[key]), key
