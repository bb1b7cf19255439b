"""The torch CUDA path's logic that needs no GPU: precision selection, the shape-keyed CUDA
graph cache (with a fake capture: captured once per shape, a failed capture remembered and
run eagerly), slicing a batch for copy/compute overlap, and CUDA-only options refused on CPU.
The GPU behaviour itself is in tests/test_gpu_backends.py (marked ``gpu``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_models import make_tiny_model_dir

from engine.backends import BackendUnavailable
from engine.backends.cuda_io import GraphCache, batch_bucket, batch_buckets, split_batch
from engine.backends.torch_backend import TorchBackend, resolve_precision


@pytest.mark.parametrize(("cuda", "dtype", "autocast", "expected"), [
    (False, "float32", False, ("float32", None)),
    (True, "float32", True, ("float32", None)),  # autocast to float32 is no autocast
    (True, "float16", False, ("float16", None)),  # weights cast
    (True, "float16", True, ("float32", "float16")),  # weights float32, convs autocast
    (True, "bfloat16", True, ("float32", "bfloat16")),
    (True, "bfloat16", False, ("bfloat16", None)),
])
def test_resolve_precision(cuda: bool, dtype: str, autocast: bool, expected: tuple) -> None:
    assert resolve_precision(cuda, dtype, autocast) == expected


def test_resolve_precision_refusals() -> None:
    with pytest.raises(ValueError, match="only supported on CUDA"):
        resolve_precision(False, "bfloat16", True)
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_precision(True, "float8", False)
    with pytest.raises(BackendUnavailable, match="bfloat16.*8.0"):
        resolve_precision(True, "bfloat16", True, bf16_supported=False)


@pytest.mark.parametrize("options", [{"autocast": True}, {"cuda_graphs": True},
                                     {"overlap_chunks": 2}, {"compile": True},
                                     {"channels_last": True}, {"output_dtype": "float16"}])
def test_cuda_only_options_refused_on_cpu(tmp_path: Path, options: dict) -> None:
    with pytest.raises(ValueError, match="only supported on CUDA"):
        TorchBackend(make_tiny_model_dir(tmp_path / "m", 2), device="cpu", **options)


def test_graph_cache_captures_once_per_shape_and_remembers_failures() -> None:
    captured: list[tuple] = []

    def capture(x):
        captured.append(x)
        if x == (3, 1, 8):
            raise RuntimeError("operation not permitted when stream is capturing")
        return f"graph{x}"

    cache = GraphCache(capture)
    assert cache.get((1, 1, 8), (1, 1, 8)) == "graph(1, 1, 8)"
    assert cache.get((1, 1, 8), (1, 1, 8)) == "graph(1, 1, 8)"  # replayed, not recaptured
    assert cache.get((3, 1, 8), (3, 1, 8)) is None  # capture failed: run eagerly
    assert cache.get((3, 1, 8), (3, 1, 8)) is None  # ... and it is not retried
    assert captured == [(1, 1, 8), (3, 1, 8)]
    assert len(cache) == 1 and "not permitted" in cache.failed[(3, 1, 8)]
    cache.clear()
    assert len(cache) == 0 and not cache.failed


@pytest.mark.parametrize(("n", "parts", "expected"), [
    (8, 2, [(0, 4), (4, 8)]),
    (5, 2, [(0, 2), (2, 5)]),
    (3, 4, [(0, 1), (1, 2), (2, 3)]),  # never an empty slice
    (7, 1, [(0, 7)]),
    (1, 3, [(0, 1)]),
])
def test_split_batch(n: int, parts: int, expected: list) -> None:
    slices = split_batch(n, parts)
    assert slices == expected
    assert sum(b - a for a, b in slices) == n


@pytest.mark.parametrize(("n", "max_batch", "expected"), [
    (1, 32, 1), (2, 32, 2), (3, 32, 4), (5, 32, 8), (17, 32, 32), (32, 32, 32),
    (20, 24, 24), (40, 32, 40), (3, None, 3)])
def test_batch_bucket(n: int, max_batch: int | None, expected: int) -> None:
    assert batch_bucket(n, max_batch) == expected


def test_batch_buckets_cover_every_batch_size() -> None:
    assert batch_buckets(32) == [1, 2, 4, 8, 16, 32]
    assert batch_buckets(24) == [1, 2, 4, 8, 16, 24]
    assert all(batch_bucket(n, 24) in batch_buckets(24) for n in range(1, 25))
