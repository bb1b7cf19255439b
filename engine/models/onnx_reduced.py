"""Reduced-precision (fp16 / bf16) ONNX graphs for strongly typed TensorRT engines.

TensorRT 11 removed the weak-typing builder flags (``BuilderFlag.FP16``/``BF16``/``INT8``):
the precision of every layer now comes from the ONNX graph itself (NVIDIA's 10.x → 11.x
migration guide). :func:`export_reduced_onnx` writes such a graph from the model's weights by
exporting the network in half precision, with the I/O kept float32 (like ModelOpt AutoCast's
``keep_io_types``) so the runtime plumbing does not change::

    input (float32) ─Cast→ fp16|bf16 ─▶ U-Net (fp16|bf16 weights) ─Cast→ float32 ─▶ Softmax

The softmax runs in float32. Batch-norm layers are folded into the convolutions by the export.
bf16 graphs need ONNX opset 22 (the first that allows bfloat16 convolutions); fp16 stays at
the fp32 export's opset 17. Like :func:`~engine.models.model_dir.export_onnx`, the graph
records the weights digest, and also its precision.

:func:`max_prob_diff` checks a graph on CPU against the float32 torch network: with
onnxruntime for fp16; with ONNX's reference evaluator for bf16 (onnxruntime's CPU provider has
no bfloat16 convolution). The stated tolerances are :data:`REDUCED_ATOL`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .model_dir import ModelDir, _stamp_weights_digest, weights_digest

log = logging.getLogger(__name__)

REDUCED_PRECISIONS = ("fp16", "bf16")
OPSET = {"fp16": 17, "bf16": 22}
PRECISION_KEY = "castream_precision"
#: max |p_reduced - p_fp32| over all probabilities accepted by :func:`max_prob_diff` users (the
#: GPU tests' tolerances for torch fp16/bf16 against the float32 CPU reference)
REDUCED_ATOL = {"fp16": 2e-2, "bf16": 5e-2}


def _torch_dtype(precision: str) -> Any:
    import torch

    if precision not in REDUCED_PRECISIONS:
        raise ValueError(f"precision must be one of {REDUCED_PRECISIONS}, got {precision!r}")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def _reduced_network(model: ModelDir, precision: str) -> Any:
    """``float32 in → cast → net in ``precision`` → float32 softmax``, as a torch module."""
    import torch

    dtype = _torch_dtype(precision)

    class ReducedPrecision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model.build_network().eval().to(dtype)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(x.to(dtype)).float(), dim=1)

    return ReducedPrecision().eval()


def export_reduced_onnx(model: ModelDir, path: str | Path, precision: str) -> Path:
    """Write ``model`` as an ONNX graph computing in ``precision`` ("fp16" | "bf16") with
    float32 input "input" and output "probabilities" (dynamic batch and axes)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = _reduced_network(model, precision)
    multiple = model.config.architecture.size_multiple()
    example = torch.zeros((1, 1, *(2 * m for m in multiple)), dtype=torch.float32)
    axes = {0: "batch", **{i + 2: f"axis{i}" for i in range(len(multiple))}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape ints (no-op branch)
        torch.onnx.export(net, (example,), str(path), dynamo=False,
                          opset_version=OPSET[precision], input_names=["input"],
                          output_names=["probabilities"],
                          dynamic_axes={"input": axes, "probabilities": axes})
    _stamp_weights_digest(path, weights_digest(model))
    _stamp_precision(path, precision)
    log.info("exported %s in %s (opset %d)", path, precision, OPSET[precision])
    return path


def _stamp_precision(path: Path, precision: str) -> None:
    import onnx

    graph = onnx.load(str(path))
    graph.metadata_props.add(key=PRECISION_KEY, value=precision)
    onnx.save(graph, str(path))


def read_precision(path: Path) -> str:
    """The precision an ONNX graph records ("fp32" when it records none)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in graph.metadata_props if p.key == PRECISION_KEY), "fp32")


def max_prob_diff(model: ModelDir, path: Path, batch: np.ndarray) -> float:
    """Max |Δp| between the graph at ``path`` run on CPU and the float32 torch network on
    ``batch`` (float32 ``(B, 1, W, *spatial)``, spatial sizes multiples of the stride)."""
    import torch

    with torch.no_grad():
        reference = torch.softmax(model.build_network().eval()(torch.from_numpy(batch)), dim=1)
    got = run_on_cpu(path, batch)
    return float(np.max(np.abs(got - reference.numpy())))


def run_on_cpu(path: Path, batch: np.ndarray) -> np.ndarray:
    """Probabilities of the graph at ``path`` on CPU (onnxruntime; ONNX's reference evaluator
    for bf16 graphs, which onnxruntime's CPU provider cannot run)."""
    if read_precision(path) == "bf16":
        from onnx.reference import ReferenceEvaluator

        return np.asarray(ReferenceEvaluator(str(path)).run(None, {"input": batch})[0],
                          dtype=np.float32)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": batch})[0]
