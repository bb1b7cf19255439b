"""Probe: would static int8 quantization make the line-scan network cheap enough, and at what
accuracy? (The server issue's CPU target: a line-scan ≤ 0.15 CPU-seconds per recording-second.)

1. Calibration windows: the network's own inputs while the engine analyzes simulator *training*
   line-scans (``--n-calib``, the split the network was trained on; no validation or test data).
2. ``onnxruntime.quantization.quantize_static``: QDQ format, int8 weights per channel, uint8
   activations (MinMax calibration) → ``OUT/linescan-int8.onnx``.
3. Time per 256×512 window on one thread, fp32 against int8 (best of ``--repeats``).
4. Accuracy through the whole default (hybrid) engine on *validation* recordings of both
   generators (``--n`` development, seeds ``DEV_VAL_SEED``+, and ``--n`` simulator validation
   line-scans): spark F1 (IoMin) and the median errors of the five parameters, fp32 against
   int8. The int8 graph is swapped in for this run only (the model directory's ``model.onnx``
   is not touched).

Nothing is adopted by this script. ``python bench/quantize_probe.py --out build/quant``
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from acquisition.stream_kind import StreamKind
from engine.backends import onnxruntime_backend
from engine.models.model_dir import default_model_path
from engine.pipeline import analyze_array
from offline.datasets import SimulatedSource
from offline.evaluate import evaluate
from offline.experiments.validation import validation_sets

log = logging.getLogger("quantize_probe")
PARAMETERS = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")


def calibration_batches(model: Path, n_recordings: int, limit: int) -> list[np.ndarray]:
    """Inputs the network receives while analyzing simulator training line-scans."""
    seen: list[np.ndarray] = []
    original = onnxruntime_backend.OnnxRuntimeBackend.predict

    def record(backend, batch):
        seen.extend(np.asarray(b[None], np.float32) for b in batch)
        return original(backend, batch)

    onnxruntime_backend.OnnxRuntimeBackend.predict = record
    try:
        for rec in SimulatedSource(kind="linescan", split="train").lazy(n_recordings):
            analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, model_dir=model,
                          detector="network", backend="onnxruntime", chunk_frames=256)
    finally:
        onnxruntime_backend.OnnxRuntimeBackend.predict = original
    step = max(1, len(seen) // limit)
    return seen[::step][:limit]


class _Reader(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {"input": batch}


def ms_per_window(path: Path, window: np.ndarray, repeats: int) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {"input": window})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"input": window})
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def accuracy(model: Path, n: int, onnx: Path | None) -> dict[str, str]:
    """Spark F1 and median parameter errors per generator, with ``onnx`` swapped in."""
    original = onnxruntime_backend.resolve_onnx
    if onnx is not None:
        onnxruntime_backend.resolve_onnx = lambda model_dir, precision="fp32": onnx
    try:
        out = {}
        for name, recordings in validation_sets("linescan", n, n).items():
            result = evaluate(recordings, model, detector="auto", backend="onnxruntime",
                              progress=False)
            errors = " ".join(f"{p} {result.characterization[p]['median_rel_error']:.1%}"
                              for p in PARAMETERS if p in result.characterization)
            out[name] = f"spark F1 {result.scores['spark']['f1']:.3f}; {errors}"
        return out
    finally:
        onnxruntime_backend.resolve_onnx = original


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/quant"))
    parser.add_argument("--n-calib", type=int, default=4, help="simulator training line-scans")
    parser.add_argument("--windows", type=int, default=32, help="calibration windows kept")
    parser.add_argument("--n", type=int, default=12, help="validation line-scans per generator")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    model = default_model_path(StreamKind.LINESCAN, "accurate")
    fp32 = model / "model.onnx"
    args.out.mkdir(parents=True, exist_ok=True)
    batches = calibration_batches(model, args.n_calib, args.windows)
    log.info("%d calibration windows of shape %s", len(batches), batches[0].shape)
    prepared, int8 = args.out / "linescan-prepared.onnx", args.out / "linescan-int8.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8), _Reader(batches), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    window = batches[0]
    log.info("one thread, ms per %s window: fp32 %.1f, int8 %.1f", window.shape,
             ms_per_window(fp32, window, args.repeats), ms_per_window(int8, window, args.repeats))
    for label, onnx in (("fp32", None), ("int8", int8)):
        for generator, line in accuracy(model, args.n, onnx).items():
            log.info("%s, %s validation (%d line-scans): %s", label, generator, args.n, line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
