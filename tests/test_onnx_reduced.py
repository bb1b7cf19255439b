"""Reduced-precision ONNX graphs (the input of strongly typed TensorRT engines) run on CPU and
match the float32 network within the stated tolerance; their weights really are fp16/bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures_models import make_tiny_model_dir

from engine.models import ModelDir
from engine.models.model_dir import read_onnx_weights_digest, weights_digest
from engine.models.onnx_reduced import (
    OPSET,
    REDUCED_ATOL,
    export_reduced_onnx,
    max_prob_diff,
    read_precision,
)

ELEM = {"fp16": onnx.TensorProto.FLOAT16, "bf16": onnx.TensorProto.BFLOAT16}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize(("ndim", "shape"), [(2, (2, 1, 32, 64)), (3, (1, 1, 32, 16, 32))])
def test_reduced_graph_matches_fp32(tmp_path: Path, precision: str, ndim: int,
                                    shape: tuple[int, ...]) -> None:
    model = ModelDir.load(make_tiny_model_dir(tmp_path / "m", ndim, seed=7))
    path = export_reduced_onnx(model, tmp_path / f"m-{precision}.onnx", precision)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    float_weights = [t for t in graph.graph.initializer if t.dims and t.data_type != 7]
    assert float_weights and {t.data_type for t in float_weights} == {ELEM[precision]}
    io = [graph.graph.input[0], graph.graph.output[0]]
    assert [v.type.tensor_type.elem_type for v in io] == [onnx.TensorProto.FLOAT] * 2
    assert graph.opset_import[0].version == OPSET[precision]
    assert read_precision(path) == precision
    assert read_onnx_weights_digest(path) == weights_digest(model)
    batch = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    diff = max_prob_diff(model, path, batch)
    assert 0 < diff <= REDUCED_ATOL[precision]  # > 0: it did compute in reduced precision
