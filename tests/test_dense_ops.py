"""The per-pixel reductions on a torch device equal the numpy reference (engine/dense_ops.py),
operation by operation and through a whole analysis: the same events.

Here torch runs on its CPU device, which exercises the code a stream runs on a GPU; the cases
marked ``gpu`` run the same on CUDA (skipped, with the reason, where torch sees no GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_models import make_tiny_model_dir

from acquisition.simulate import MovieParams, simulate_movie
from engine import pipeline
from engine.dense_ops import CPU_OPS, DenseOps, TorchDenseOps, dense_ops_for
from engine.hybrid import HybridParams
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array

torch = pytest.importorskip("torch")

_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                           reason="needs a CUDA GPU (torch sees none)")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, _CUDA])]
#: a GPU may fuse a multiply and an add: one float32 rounding step (module docstring)
GAUSS_RTOL = {"cpu": 0.0, "cuda": 2.4e-7}


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def _movie(seed: int = 0, shape=(40, 16, 96)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("sigma", [(0.6, 2.5, 2.5), (0.0, 1.5, 3.1), (2.0, 0.7)])
def test_gaussian_filter_is_scipys(device, sigma) -> None:
    values = _movie(1) if len(sigma) == 3 else _movie(1)[:, 0]
    ref = CPU_OPS.gaussian_filter(values, sigma, 3.0)
    out = TorchDenseOps(device).gaussian_filter(values, sigma, 3.0)
    assert out.dtype == np.float32 and out.shape == values.shape
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out, ref, rtol=0, atol=GAUSS_RTOL[device] * scale)
    assert not np.array_equal(ref, values)  # it did smooth


@pytest.mark.parametrize("axes", [(1, 2), (0,), (2,)])
def test_box_sum_of_integers_is_exact(device, axes) -> None:
    values = np.random.default_rng(2).integers(-2**36, 2**36, size=(30, 12, 40))
    out = TorchDenseOps(device).box_sum(values, 3, axes)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, CPU_OPS.box_sum(values, 3, axes))
    # and it is the sum it claims: a window wholly inside the array
    if axes == (2,):
        assert out[4, 5, 20] == values[4, 5, 17:24].sum()


def test_box_sum_of_floats_to_float64_rounding(device) -> None:
    values = np.random.default_rng(3).normal(size=(20, 12, 40))
    ref = CPU_OPS.box_sum(values, 2, (1, 2))
    np.testing.assert_allclose(TorchDenseOps(device).box_sum(values, 2, (1, 2)), ref,
                               rtol=0, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_array_equal(TorchDenseOps(device).box_sum(values, 0, (1,)), values)


@pytest.mark.parametrize("rank", [0, 9, 39])
def test_order_statistic_selects_the_same_element(device, rank) -> None:
    values = np.random.default_rng(4).normal(size=(3000, 40)).astype(np.float32)
    out = TorchDenseOps(device).order_statistic(values, rank)
    np.testing.assert_array_equal(out, CPU_OPS.order_statistic(values, rank))
    np.testing.assert_array_equal(out, np.sort(values, axis=1)[:, rank])


def test_row_order_statistics_select_the_same_elements(device) -> None:
    values = np.random.default_rng(6).normal(size=(50, 900)).astype(np.float32)
    values[:, ::7] = np.inf  # how frame_levels leaves pixels outside the cell out
    ranks = np.random.default_rng(7).integers(0, 700, size=50)
    out = TorchDenseOps(device).row_order_statistics(values, ranks)
    np.testing.assert_array_equal(out, CPU_OPS.row_order_statistics(values, ranks))
    np.testing.assert_array_equal(out, np.sort(values, axis=1)[np.arange(50), ranks])


@pytest.mark.parametrize("size", [(3, 5, 7), (1, 3, 3), (5, 1)])
def test_maximum_filter_is_scipys(device, size) -> None:
    from scipy import ndimage

    values = _movie(8) if len(size) == 3 else _movie(8)[:, 0]
    ops = TorchDenseOps(device)
    np.testing.assert_array_equal(ops.maximum_filter(values, size),
                                  ndimage.maximum_filter(values, size=size, mode="nearest"))
    mask = values > 1.5
    out = ops.maximum_filter(mask, size)
    assert out.dtype == np.bool_ and out.sum() > mask.sum()
    np.testing.assert_array_equal(out, ndimage.maximum_filter(mask, size=size, mode="constant"))


@pytest.mark.parametrize("n", [58, 59])
def test_medians_are_numpys(device, n) -> None:
    """Odd and even counts (numpy averages the two middle values in float32)."""
    values = _movie(5, (n, 16, 96))
    ops = TorchDenseOps(device)
    np.testing.assert_array_equal(ops.median(values), np.median(values, axis=0))
    np.testing.assert_array_equal(ops.median_abs_difference(values),
                                  np.median(np.abs(np.diff(values, axis=0)), axis=0))


@pytest.mark.parametrize(("op", "args"), [
    ("gaussian_filter", (np.zeros((0, 4, 5), np.float32), [1.0, 1.0, 1.0], 3.0)),
    ("box_sum", (np.zeros((0, 4, 5), np.int64), 2, (1, 2))),
    ("maximum_filter", (np.zeros((0, 4, 5), bool), (3, 3, 3))),
    ("median", (np.zeros((0, 4, 5), np.float32),)),
    ("median_abs_difference", (np.ones((1, 4, 5), np.float32),)),
    ("row_order_statistics", (np.zeros((0, 5), np.float32), np.zeros(0, np.int64))),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's mean of nothing
def test_empty_inputs_come_back_as_numpys(device, op, args) -> None:
    ref = getattr(CPU_OPS, op)(*args)
    out = getattr(TorchDenseOps(device), op)(*args)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)


def test_dense_ops_for_puts_only_a_usable_cuda_on_torch(monkeypatch, caplog) -> None:
    assert type(dense_ops_for(None)) is DenseOps
    assert type(dense_ops_for("cpu")) is DenseOps
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert isinstance(dense_ops_for("cuda:1"), TorchDenseOps)  # nothing runs until asked
    assert dense_ops_for("cuda:1").device == "cuda:1"
    # a TensorRT backend on a GPU beside a torch without CUDA: the numpy path, said so
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert type(dense_ops_for("cuda")) is DenseOps
    assert "cannot use CUDA" in caplog.text
    with pytest.raises(ValueError, match="dense_device"):
        EngineConfig(dense_device="gpu")


def _events(rec, model: Path, **config) -> list[dict]:
    factory = DetectorFactory(EngineConfig(model=model, detector="hybrid",
                                           hybrid=HybridParams(min_significance=5.0), **config))
    result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                           blank=rec.blank, chunk_frames=4, factory=factory)
    return [e.to_dict() for e in result.events]


def test_a_hybrid_analysis_on_torch_finds_the_same_events(tmp_path, monkeypatch) -> None:
    """Preprocessing, noise maps and the classical half's smoothing and window sums on torch
    (its CPU device here: the code a GPU stream runs) give the events of the numpy path,
    every field of every event."""
    model = make_tiny_model_dir(tmp_path / "m", 3, behaviour="threshold", threshold_dff0=0.3,
                                thresholds={"foreground": 0.5, "resting_baseline": True})
    rec = simulate_movie(MovieParams(n_frames=160, n_y=24, n_x=96), seed=11)
    reference = _events(rec, model, backend="torch", device="cpu")
    used: list[TorchDenseOps] = []

    def torch_ops(device: str) -> TorchDenseOps:
        used.append(TorchDenseOps("cpu"))
        return used[-1]

    monkeypatch.setattr(pipeline, "dense_ops_for", torch_ops)
    on_torch = _events(rec, model, backend="torch", device="cpu")
    assert used, "the factory did not ask for the backend's dense operations"
    assert len(reference) >= 3
    assert on_torch == reference
    # dense_device "cpu" keeps the reference even where the backend's device would not
    used.clear()
    assert _events(rec, model, backend="torch", device="cpu", dense_device="cpu") == reference
    assert not used


@pytest.mark.gpu
@_CUDA
def test_a_cuda_stream_reduces_on_the_gpu_and_finds_the_same_events(tmp_path) -> None:
    model = make_tiny_model_dir(tmp_path / "m", 3, behaviour="threshold", threshold_dff0=0.3)
    rec = simulate_movie(MovieParams(n_frames=160, n_y=24, n_x=96), seed=11)
    factory = DetectorFactory(EngineConfig(model=model, backend="torch", device="cuda"))
    from acquisition.stream_kind import StreamKind
    from engine.analyzer import StreamInfo

    info = StreamInfo("s", StreamKind.MOVIE, rec.data.shape[1:], rec.pixel_um, rec.dt_ms)
    assert isinstance(factory.detector(info).dense_ops, TorchDenseOps)
    on_gpu = _events(rec, model, backend="torch", device="cuda")
    on_cpu = _events(rec, model, backend="torch", device="cuda", dense_device="cpu")
    keys = ("kind", "t_start_ms", "t_peak_ms", "t_end_ms", "x_um", "y_um")
    assert on_gpu and [[e[k] for k in keys] for e in on_gpu] == [[e[k] for k in keys]
                                                                  for e in on_cpu]


@pytest.mark.gpu
@_CUDA
def test_each_thread_reduces_on_a_cuda_stream_of_its_own() -> None:
    """Not on the default stream (where a network batch may be queued), one per thread, and
    threads running at once get the reference's numbers."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ops = TorchDenseOps("cuda")
    seen = []

    def work(seed: int):
        with ops._stream():
            seen.append((threading.get_ident(), torch.cuda.current_stream().cuda_stream))
        values = _movie(seed)
        return ops.median(values), np.median(values, axis=0)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    for out, ref in results:
        np.testing.assert_array_equal(out, ref)
    default = torch.cuda.default_stream().cuda_stream
    assert all(stream != default for _, stream in seen)
    by_thread = {}
    for thread, stream in seen:
        assert by_thread.setdefault(thread, stream) == stream  # a thread keeps its stream
    assert len(set(by_thread.values())) == len(by_thread)  # and no two threads share one


def test_the_commands_take_dense_device() -> None:
    import argparse

    from engine.commands._engine_args import add_engine_arguments, engine_config

    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    assert engine_config(parser.parse_args([])).dense_device == "auto"
    assert engine_config(parser.parse_args(["--dense-device", "cpu"])).dense_device == "cpu"
    with pytest.raises(SystemExit):
        parser.parse_args(["--dense-device", "gpu"])
