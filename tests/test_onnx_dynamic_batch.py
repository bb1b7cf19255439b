"""The ONNX graphs TensorRT builds from: the default line-scan and movie architectures export with
a dynamic batch axis, pass the ONNX checker (and ``polygraphy check lint`` when polygraphy and
onnx_graphsurgeon are installed), and run in onnxruntime at batch 1 and 3 with each window's
output independent of its batch (what cross-stream batching relies on).

(tests/test_offline_smoke.py checks torch ≈ onnxruntime for a tiny trained line-scan model; this
checks the default architectures at their real window lengths.)
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.models import ModelDir
from engine.models.defaults import default_linescan_config, default_movie_config
from engine.models.model_dir import export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# real window lengths; a narrower movie than 64×512 to keep CPU time small (spatial axes are
# dynamic too, and TensorRT fixes them per engine)
CASES = {"linescan": (default_linescan_config, (512,)),
         "movie": (default_movie_config, (32, 64))}


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory) -> tuple[Path, tuple[int, ...]]:
    import torch

    from engine.models.unet import UNet

    make_config, spatial = CASES[request.param]
    config = make_config("accurate")
    torch.manual_seed(0)
    model = ModelDir.from_network(UNet(config.architecture).eval(), config, {"foreground": 0.5})
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return path, (config.geometry("accurate").frames, *spatial)


def test_dynamic_batch_axis_and_checker(exported) -> None:
    path, _ = exported
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    for value in (*graph.graph.input, *graph.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        assert dim0.dim_param == "batch" and not dim0.HasField("dim_value"), value.name
    assert [v.name for v in graph.graph.input] == ["input"]
    assert [v.name for v in graph.graph.output] == ["probabilities"]


def test_batch_invariant_in_onnxruntime(exported) -> None:
    path, window = exported
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(0, 0.5, (3, 1, *window)).astype(np.float32)
    together = session.run(None, {"input": batch})[0]
    assert together.shape == (3, 4, *window)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)
    for i in (0, 2):
        np.testing.assert_array_equal(session.run(None, {"input": batch[i:i + 1]})[0],
                                      together[i:i + 1])


def test_probabilities_are_the_softmax_of_the_logits(exported, request) -> None:
    """The graph's class softmax (written as reductions and elementwise ops, cheaper on the CPU
    than onnxruntime's Softmax on a non-last axis) equals torch's softmax of the logits; the
    logits are spread wide so the max subtraction matters."""
    import torch

    from engine.models.unet import UNet

    path, window = exported
    make_config, _ = CASES[request.node.callspec.params["exported"]]
    config = make_config("accurate")
    torch.manual_seed(0)
    network = UNet(config.architecture).eval()
    batch = np.random.default_rng(1).normal(0, 30.0, (1, 1, *window)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = torch.softmax(network(torch.from_numpy(batch)), dim=1).numpy()
    np.testing.assert_allclose(session.run(None, {"input": batch})[0], expected, atol=1e-5)


def test_polygraphy_lint(exported) -> None:
    """``polygraphy check lint`` with a real window shape (with its default 1×1×1×1 input the
    lint runs the graph at an invalid size and fails on the U-Net's padding Concat)."""
    path, window = exported
    if importlib.util.find_spec("onnx_graphsurgeon") is None:
        pytest.skip("polygraphy lint needs onnx_graphsurgeon (pip install onnx-graphsurgeon)")
    exe = Path(sys.executable).parent / "polygraphy"
    if not exe.exists():
        pytest.skip("polygraphy is not installed")
    shape = ",".join(str(s) for s in (2, 1, *window))
    proc = subprocess.run([str(exe), "check", "lint", str(path), "--input-shapes",
                           f"input:[{shape}]"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
