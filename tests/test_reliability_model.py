"""The engine runs the weights it says it runs (issue 11): ``model.onnx`` records the SHA-256
of the ``weights.safetensors`` it was exported from, and a mismatch refuses to load."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends.onnxruntime_backend import OnnxRuntimeBackend
from engine.models.model_dir import ModelDir, ModelDirError, export_onnx
from tests.fixtures_models import make_tiny_model_dir


def test_onnx_from_other_weights_is_refused(tmp_path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", ndim=2)
    model = ModelDir.load(path)
    export_onnx(model, path / "model.onnx")
    batch = np.random.default_rng(0).normal(size=(1, 1, 32, 64)).astype(np.float32)
    before = OnnxRuntimeBackend(path).predict(batch)
    model.weights = {k: np.zeros_like(v) for k, v in model.weights.items()}
    model.save(path)  # weights changed, model.onnx not re-exported
    with pytest.raises(ModelDirError, match="exported from other weights.*castream export"):
        OnnxRuntimeBackend(path)
    export_onnx(ModelDir.load(path), path / "model.onnx")  # re-export: accepted again
    after = OnnxRuntimeBackend(path).predict(batch)
    assert not np.allclose(before, after)  # and it runs the new weights


def test_onnx_without_digest_is_run_with_a_warning(tmp_path, caplog) -> None:
    path = make_tiny_model_dir(tmp_path / "old", ndim=2, with_onnx=True)
    import onnx

    graph = onnx.load(str(path / "model.onnx"))
    del graph.metadata_props[:]  # as exported by an older castream
    onnx.save(graph, str(path / "model.onnx"))
    OnnxRuntimeBackend(path)
    assert any("carries no weights digest" in r.getMessage() for r in caplog.records)
