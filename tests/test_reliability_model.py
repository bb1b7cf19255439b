"""The engine runs the weights it says it runs (issue 11): ``model.onnx`` records the SHA-256
of the ``weights.safetensors`` it was exported from; a mismatch, or a graph that records no
digest (older than the check), refuses to load with one line naming the fix; saving a model
re-exports a ``model.onnx`` that runs other weights."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from acquisition.stream_kind import StreamKind
from engine.backends.onnxruntime_backend import OnnxRuntimeBackend, resolve_onnx
from engine.cli import main
from engine.models.model_dir import (
    WEIGHTS_FILE,
    ModelDir,
    ModelDirError,
    default_model_path,
    export_onnx,
    read_onnx_weights_digest,
    weights_digest,
)
from tests.fixtures_models import make_tiny_model_dir

BATCH = np.random.default_rng(0).normal(size=(1, 1, 32, 64)).astype(np.float32)


def test_onnx_from_other_weights_is_refused(tmp_path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", ndim=2, with_onnx=True)
    before = OnnxRuntimeBackend(path).predict(BATCH)
    model = ModelDir.load(path)
    zeroed = {k: np.zeros_like(v) for k, v in model.weights.items()}
    save_file(zeroed, str(path / WEIGHTS_FILE))  # weights replaced, model.onnx not re-exported
    with pytest.raises(ModelDirError, match="exported from other weights.*castream export"):
        OnnxRuntimeBackend(path)
    with pytest.raises(ModelDirError, match="exported from other weights"):
        resolve_onnx(ModelDir.load(path))  # the TensorRT backend builds from this graph too
    export_onnx(ModelDir.load(path), path / "model.onnx")  # re-export: accepted again
    after = OnnxRuntimeBackend(path).predict(BATCH)
    assert not np.allclose(before, after)  # and it runs the new weights


def test_onnx_without_digest_is_refused(tmp_path) -> None:
    path = make_tiny_model_dir(tmp_path / "old", ndim=2, with_onnx=True)
    import onnx

    graph = onnx.load(str(path / "model.onnx"))
    del graph.metadata_props[:]  # as exported by an older castream
    onnx.save(graph, str(path / "model.onnx"))
    with pytest.raises(ModelDirError, match="does not record which weights.*castream export"):
        OnnxRuntimeBackend(path)


def test_cli_names_the_fix_in_one_line(tmp_path, caplog) -> None:
    from acquisition.simulate import LinescanParams, simulate_linescan, write_recording

    path = make_tiny_model_dir(tmp_path / "m", ndim=2, with_onnx=True)
    model = ModelDir.load(path)
    save_file({k: np.asarray(v + 1) for k, v in model.weights.items()}, str(path / WEIGHTS_FILE))
    rec = simulate_linescan(LinescanParams(n_lines=300, n_pixels=64), seed=1)
    write_recording(rec, tmp_path, "cell")
    rc = main(["analyze", str(tmp_path / "cell.tif"), "--out", str(tmp_path / "out"),
               "--model", str(path), "--backend", "onnxruntime", "--no-progress"])
    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("castream export" in e for e in errors)
    assert not (tmp_path / "out").exists()


def test_saving_new_weights_re_exports_model_onnx(tmp_path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", ndim=2, with_onnx=True)
    model = ModelDir.load(path)
    model.weights = {k: v * 0.5 for k, v in model.weights.items()}
    model.save(path)  # as `castream train` does
    assert read_onnx_weights_digest(path / "model.onnx") == weights_digest(ModelDir.load(path))
    OnnxRuntimeBackend(path)  # accepted


@pytest.mark.parametrize(("kind", "mode"), [(StreamKind.LINESCAN, "accurate"),
                                            (StreamKind.LINESCAN, "low_latency"),
                                            (StreamKind.MOVIE, "accurate")])
def test_packaged_models_record_their_weights(kind, mode) -> None:
    model = ModelDir.load(default_model_path(kind, mode))
    assert model.onnx_path is not None
    assert read_onnx_weights_digest(model.onnx_path) == weights_digest(model)
