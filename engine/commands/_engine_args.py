"""Command-line options shared by the commands that run the engine (serve, analyze, demo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument("--model", type=Path,
                       help="model directory (default: the packaged model for the data kind)")
    group.add_argument("--mode", choices=("accurate", "low_latency"), default="accurate",
                       help="window geometry: accurate or short look-ahead (default: accurate)")
    group.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"),
                       default="auto", help="inference backend (default: auto)")
    group.add_argument("--device", help="cpu | cuda[:N] (default: best available)")
    group.add_argument("--detector", choices=("auto", "network", "classical", "hybrid"),
                       default="auto",
                       help="network, classical (no model needed), hybrid (both, fused) or auto "
                       "(the model's choice: hybrid when its directory has hybrid.json, else "
                       "network; classical when no model fits)")
    group.add_argument("--threshold", type=float,
                       help="override the model's tuned foreground threshold")
    group.add_argument("--classifier", type=Path,
                       help="cell classifier directory (default: the packaged one)")
    group.add_argument("--batch", choices=("auto", "on", "off"), default="auto",
                       help="batch windows across streams (default auto: on for CUDA/TensorRT "
                       "backends, off on CPU)")
    group.add_argument("--max-batch", type=int, default=32,
                       help="windows per batch with --batch (default: %(default)s)")
    group.add_argument("--max-wait-ms", type=float, default=10.0,
                       help="longest a window waits for its batch to fill (default: "
                       "%(default)s ms)")
    group.add_argument("--dense-device", choices=("auto", "cpu"), default="auto",
                       help="where the per-pixel reductions run: auto on the GPU the network "
                       "runs on (the same numbers as on the CPU), cpu always on the CPU "
                       "(default: auto)")


def engine_config(args: argparse.Namespace):
    from engine.pipeline import EngineConfig

    thresholds = {"foreground": args.threshold} if args.threshold is not None else None
    return EngineConfig(model=args.model, mode=args.mode, backend=args.backend,
                        device=args.device, detector=args.detector, thresholds=thresholds,
                        classifier=args.classifier,
                        batch={"auto": None, "on": True, "off": False}[args.batch],
                        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                        dense_device=args.dense_device)
