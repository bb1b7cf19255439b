"""ONNX export of a model directory, checked against torch with onnxruntime.

The graph is written by the engine's :func:`engine.models.model_dir.export_onnx` (UNet + softmax,
input "input" ``(B, 1, T, *spatial)``, output "probabilities", dynamic batch and axes), so the
engine's ONNX contract lives in one place. Here it is verified: probabilities from onnxruntime
and torch on random windows of the model's geometry (batch 2 and 1) must agree within
``ATOL_PROB``; ``polygraphy check lint`` runs when polygraphy is installed. The report is stored
as ``onnx_export`` in metrics.json. A cells model directory (``kind`` "cells") gets its
``curator.onnx``, ``structure.onnx`` and ``pattern.onnx`` instead (:func:`export_cells`),
checked the same way, and, when it holds a 3-D head, its ``stack_head.onnx``
(:func:`export_stack_head`, also run by ``python -m offline.cellstruct.train_stack``; that
report is kept in ``stack_head.json`` too).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: max |p_torch − p_onnxruntime| allowed on probabilities (float32 graphs, CPU)
ATOL_PROB = 1e-4


def example_shape(model: Any, batch: int = 2) -> tuple[int, ...]:
    """``(B, 1, W_t, *spatial)``: the first window geometry's frames and a spatial size that is a
    multiple of the network's stride (512 px lines, 64×128 px movie tiles)."""
    geometry = next(iter(model.config.window.values()))
    multiple = model.config.architecture.size_multiple()
    spatial = (512,) if len(multiple) == 2 else (64, 128)
    spatial = tuple(int(np.ceil(s / m) * m) for s, m in zip(spatial, multiple[1:], strict=True))
    frames = int(np.ceil(geometry.frames / multiple[0]) * multiple[0])
    return (batch, 1, frames, *spatial)


def export_onnx(model_dir: str | Path, out_path: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Export, verify and lint; returns the report (also stored in metrics.json)."""
    import torch

    from engine.models import model_dir as md

    model = md.ModelDir.load(model_dir)
    out_path = Path(out_path or Path(model_dir) / md.ONNX_FILE)
    md.export_onnx(model, out_path)
    shape = example_shape(model)
    example = torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    report = {"input_shape": list(shape), "atol_prob": ATOL_PROB,
              "max_abs_diff_prob": check_onnx(model.build_network(), out_path, example),
              "polygraphy_lint": polygraphy_lint(out_path, shape),
              "size_bytes": out_path.stat().st_size}
    report["passed"] = report["max_abs_diff_prob"] <= ATOL_PROB
    _store_report(Path(model_dir), report)
    if not report["passed"]:
        log.error("ONNX output differs from torch by %.2e", report["max_abs_diff_prob"])
    return report


def export_cells(model_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Export a cells model directory's graphs (:func:`engine.cells.onnx_runtime.export_cells_onnx`)
    and check them against torch on random inputs (batch 1 and 5); returns the report (also
    stored in metrics.json)."""
    from engine.cells.model import CellsModel
    from engine.cells.onnx_runtime import OPSET, export_cells_onnx, max_differences, open_sessions
    from engine.cells.stack_head import StackHead

    model = CellsModel.load(model_dir)
    paths = export_cells_onnx(model)
    sessions, why = open_sessions(model)
    if sessions is None:
        raise RuntimeError(f"the exported graphs do not open: {why}")
    diffs = max_differences(model, sessions, (1, 5), seed)
    report = {"opset": OPSET, "batches": [1, 5], "atol_prob": ATOL_PROB,
              "max_abs_diff": diffs,
              "size_bytes": {name: path.stat().st_size for name, path in paths.items()}}
    if StackHead.present(model_dir):
        stack = export_stack_head(model_dir, seed)
        diffs["stack_head"] = stack["max_abs_diff"]
        report["size_bytes"]["stack_head"] = stack["size_bytes"]
    report["passed"] = max(diffs.values()) <= ATOL_PROB
    _store_report(Path(model_dir), report)
    if not report["passed"]:
        log.error("cells ONNX outputs differ from torch by %s", diffs)
    return report


def export_stack_head(directory: str | Path, seed: int = 0) -> dict[str, Any]:
    """Export a directory's 3-D head (:func:`engine.cells.stack_onnx.export_stack_onnx`) and
    check it against torch on random inputs (batch 1 and 5); returns the report (also stored
    as ``onnx_export`` in ``stack_head.json``, which the weights digest does not cover)."""
    from engine.cells.onnx_runtime import OPSET
    from engine.cells.stack_head import CONFIG_FILE, StackHead
    from engine.cells.stack_onnx import export_stack_onnx, max_difference, open_stack_session

    head = StackHead.load(directory)
    path = export_stack_onnx(head)
    session, why = open_stack_session(head)
    if session is None:
        raise RuntimeError(f"the exported 3-D head graph does not open: {why}")
    diff = max_difference(head, session, (1, 5), seed)
    report = {"opset": OPSET, "batches": [1, 5], "atol_prob": ATOL_PROB,
              "max_abs_diff": diff, "size_bytes": path.stat().st_size,
              "passed": diff <= ATOL_PROB}
    _store_report(Path(directory), report, CONFIG_FILE)
    if not report["passed"]:
        log.error("3-D head ONNX outputs differ from torch by %.2e", diff)
    return report


def check_onnx(network, onnx_path: Path, example) -> float:
    """Max |Δ| of probabilities between torch (softmax of the logits) and onnxruntime."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (example, example[:1]):
        with torch.no_grad():
            ref = torch.softmax(network(batch), dim=1).numpy()
        got = session.run(None, {"input": batch.numpy()})[0]
        worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst


def polygraphy_lint(onnx_path: Path, input_shape: tuple[int, ...]) -> str:
    """``polygraphy check lint`` result: "passed", "failed: …" or "unavailable".

    The lint runs the graph, so it gets a real window shape (its default 1×1×1×1 input is
    invalid for the U-Net's padding and fails at a Concat).
    """
    exe = shutil.which("polygraphy") or str(Path(sys.executable).parent / "polygraphy")
    if not Path(exe).exists():
        return "unavailable"
    try:
        shape = ",".join(str(int(s)) for s in input_shape)
        proc = subprocess.run([exe, "check", "lint", str(onnx_path), "--input-shapes",
                               f"input:[{shape}]"], capture_output=True, text=True,
                              timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable: {exc}"
    if proc.returncode == 0:
        return "passed"
    if "is required but could not be imported" in proc.stdout + proc.stderr:
        return "unavailable: polygraphy lint needs onnx_graphsurgeon"
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return "failed: " + " | ".join(tail)


def _store_report(model_dir: Path, report: dict[str, Any], file: str = "metrics.json") -> None:
    """``report`` as ``onnx_export`` in the directory's JSON ``file`` (kept otherwise)."""
    path = model_dir / file
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics["onnx_export"] = report
    path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
