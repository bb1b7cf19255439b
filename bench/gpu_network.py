"""Network-only throughput on the GPU: default movie and line-scan models and Dotti et al.'s
network, fp32 / bf16 / fp16, batch 1-64, through the backends the pipeline uses.

For each model × precision × batch: the median (of ``--repeats``, each a host→host
``backend.predict`` of ``batch`` windows, pinned staging and copies included) time per call,
and frames/s = batch × hop / time (frames that become final per second: a window's overlap is
not counted twice). For the torch CUDA backends also the device-only time of the same batch
(input already on the GPU, output left there: the network and softmax alone, CUDA graph
included, timed between ``torch.cuda.synchronize`` calls) as ``device_fps``: the gap between
the two is host staging and the copies. The movie network and Dotti's run on 64×512 frames, the line-scan network
on 512-px lines. Dotti's network stops at ``--dotti-max-batch`` (its activations at batch 64
need tens of GiB). Each configuration's repeats stop early after ``--budget-s`` seconds, so
the whole run fits the GPU check's time box. One JSON line per measurement goes to ``--json``.

Precisions: ``fp32`` = torch float32 (TF32 convolutions allowed by cuDNN's default), ``bf16`` /
``fp16`` = :func:`torch.autocast` with float32 weights; all with CUDA graphs and channels-last
(``--plain`` turns those off); TensorRT is measured too when it is installed (not on the lent
H200). ``--variants`` adds torch CUDA variants per precision: ``half-out`` (probabilities
narrowed to float16 on the GPU before they are copied back, ``output_dtype``) and
``half-out-ov4`` (the copies also overlapped with compute, 4 slices per batch); ``base`` is the
float32-copy backend. Without a GPU, ``--cpu`` runs the same code on CPU with tiny frames (to
check it).

Usage: ``python bench/gpu_network.py [--json out.jsonl] [--batches 1,2,4,8,16,32,64]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from acquisition.stream_kind import StreamKind
from engine.backends import make_backend
from engine.models import ModelConfig, ModelDir, default_model_path
from engine.models.architecture import dotti_unet_config
from engine.models.defaults import (
    DEFAULT_NORMALIZATION,
    DOTTI_WINDOW,
    default_linescan_config,
    default_movie_config,
)

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _random_model(config: ModelConfig) -> ModelDir:
    import torch

    from engine.models.unet import UNet

    torch.manual_seed(0)
    return ModelDir.from_network(UNet(config.architecture), config, {"foreground": 0.5})


def models() -> dict[str, ModelDir]:
    """Packaged default models when present (else their architectures, random weights: speed
    does not depend on the weights) and Dotti et al.'s 3D U-Net."""
    out = {}
    for label, kind, config in (("movie", StreamKind.MOVIE, default_movie_config),
                                ("linescan", StreamKind.LINESCAN, default_linescan_config)):
        try:
            out[label] = ModelDir.load(default_model_path(kind, "accurate"))
        except FileNotFoundError:
            out[label] = _random_model(config("accurate"))
    dotti = _random_model(ModelConfig(
        architecture=dotti_unet_config(), axes=StreamKind.MOVIE.axes,
        window={"accurate": DOTTI_WINDOW}, normalization=dict(DEFAULT_NORMALIZATION),
        calibration={"pixel_um": 0.2, "dt_ms": 6.8}, name="dotti"))
    return {"movie": out["movie"], "dotti": dotti, "linescan": out["linescan"]}  # run order


VARIANTS = {  # label suffix → torch options on top of the precision's (see --variants)
    "base": {},
    "half-out": {"output_dtype": "float16"},
    "half-out-ov4": {"output_dtype": "float16", "overlap_chunks": 4},
}


def backend_options(precision: str, plain: bool, cpu: bool,
                    variants: tuple[str, ...] = ("base",)) -> list[tuple[str, str, dict]]:
    """``(label, backend name, options)`` to measure at ``precision``: torch CUDA once per
    variant (``half-out``: float16 probabilities copied back; ``-ov4``: the copies
    overlapped with compute in 4 slices), TensorRT when installed."""
    if cpu:
        return [("torch-cpu", "torch", {})] if precision == "fp32" else []
    extra = {} if plain else {"cuda_graphs": True, "channels_last": True}
    dtype = TORCH_DTYPES[precision]
    torch_opts = {"dtype": dtype, "autocast": dtype != "float32", **extra}
    out = [(f"torch-cuda-{precision}" + ("" if v == "base" else f"-{v}"), "torch",
            {**torch_opts, **VARIANTS[v]}) for v in variants]
    if importlib.util.find_spec("tensorrt") is not None:
        out.append((f"tensorrt-{precision}", "tensorrt", {"precision": precision,
                                                           "max_batch": 64}))
    return out


def measure(model: ModelDir, name: str, options: dict, device: str, batch: int,
            spatial: tuple[int, ...], repeats: int, budget_s: float) -> dict:
    """Median seconds per ``predict`` of ``batch`` windows, and frames/s."""
    backend = make_backend(model, name, device, {name: options})
    try:
        geo = model.config.geometry("accurate")
        windows = np.random.default_rng(0).normal(
            0, 0.3, (batch, 1, geo.frames, *spatial)).astype(np.float32)
        backend.predict(windows)  # warm-up: cuDNN choice, graph capture, engine build
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < repeats and (len(times) < 2 or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            backend.predict(windows)
            times.append(time.perf_counter() - t0)
        median = float(np.median(times))
        row = {"s_per_call": median, "fps": batch * geo.hop / median, "repeats": len(times),
               "window": [geo.frames, *spatial], "hop": geo.hop}
        device_s = _device_only_s(backend, windows, repeats, budget_s)
        if device_s is not None:
            row.update(device_s_per_call=device_s, device_fps=batch * geo.hop / device_s)
        return row
    finally:
        backend.close()


def _device_only_s(backend, windows: np.ndarray, repeats: int, budget_s: float) -> float | None:
    """Median seconds of the torch CUDA runner's compute alone on ``windows`` already on the
    GPU (``None`` for other backends)."""
    runner = getattr(backend, "_runner", None)
    if runner is None or not hasattr(runner, "_compute"):
        return None
    import torch

    with torch.cuda.stream(runner.stream), torch.inference_mode():
        x = runner._to_device(torch.from_numpy(windows))
        runner._compute(x)
        runner.stream.synchronize()
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < repeats and (len(times) < 2 or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            runner._compute(x)
            runner.stream.synchronize()
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def gpu_memory_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def run(args: argparse.Namespace) -> list[dict]:
    device = "cpu" if args.cpu else "cuda"
    spatial = {"movie": (16, 64) if args.cpu else (64, 512), "dotti": (16, 64) if args.cpu
               else (64, 512), "linescan": (64,) if args.cpu else (512,)}
    batches = [int(b) for b in args.batches.split(",")]
    variants = tuple(args.variants.split(","))
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown --variants {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    results = []
    wanted = args.models.split(",")
    for label, model in models().items():
        if label not in wanted:
            continue
        for precision in args.precisions.split(","):
            for backend_label, name, options in backend_options(precision, args.plain, args.cpu,
                                                                variants):
                for batch in batches:
                    if label == "dotti" and batch > args.dotti_max_batch:
                        continue
                    row = {"model": label, "precision": precision, "backend": backend_label,
                           "batch": batch}
                    try:
                        row.update(measure(model, name, options, device, batch, spatial[label],
                                           args.repeats, args.budget_s))
                    except Exception as exc:  # noqa: BLE001 - reported, the next one runs
                        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                    row["gpu_max_alloc_gib"] = gpu_memory_gib()
                    results.append(row)
                    _report(row, args.json)
    return results


def _report(row: dict, json_path: str | None) -> None:
    what = f"network {row['model']:<8} {row['backend']:<16} batch {row['batch']:<3}"
    if "error" in row:
        print(f"{what} FAILED: {row['error']}", flush=True)
    else:
        device = (f" | device only {row['device_fps']:9.0f} frames/s "
                  f"({1e3 * row['device_s_per_call']:.2f} ms)" if "device_fps" in row else "")
        print(f"{what} {row['fps']:11.0f} frames/s ({1e3 * row['s_per_call']:8.2f} ms/call, "
              f"median of {row['repeats']}){device}", flush=True)
    if json_path:
        with open(json_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=2.0,
                        help="stop a configuration's repeats after this long (at least 2)")
    parser.add_argument("--dotti-max-batch", type=int, default=16)
    parser.add_argument("--models", default="movie,dotti,linescan",
                        help="which networks, comma-separated, of movie, dotti, linescan")
    parser.add_argument("--variants", default="base",
                        help=f"torch CUDA variants, comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--plain", action="store_true", help="no CUDA graphs / channels-last")
    parser.add_argument("--cpu", action="store_true", help="tiny CPU run to check the script")
    parser.add_argument("--json", help="append one JSON line per measurement")
    args = parser.parse_args()
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to measure (--cpu checks the script)")
        return 0
    os.environ.setdefault("CASTREAM_CACHE_DIR",
                          str(Path(tempfile.gettempdir()) / "castream-bench"))
    results = run(args)
    return 1 if results and all("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
