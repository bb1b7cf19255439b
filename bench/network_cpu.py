"""CPU throughput of the networks (and of preprocessing) at their window geometries.

For each model × mode × backend: ms per window (batch 1, best of ``--repeats``) and frames (lines) per second
including window overlap (= hop / time per window), compared with Dotti et al.'s network
(3D U-Net, 6 levels, 8 channels, 256-frame windows, hop 32). Random weights with the default
architectures (speed does not depend on the weights); a packaged default model is used when it
exists. Real-time targets (DESIGN.md): line-scan network ≤ 0.4 ms/line, movie ≥ 25 frames/s.

Usage: ``python bench/network_cpu.py [--repeats N] [--skip-dotti-torch] [--threads N]
[--linescan-only] [--linescan-model DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from acquisition.stream_kind import StreamKind
from engine.backends.onnxruntime_backend import OnnxRuntimeBackend
from engine.backends.torch_backend import TorchBackend
from engine.models import ModelConfig, ModelDir, default_model_path
from engine.models.architecture import dotti_unet_config
from engine.models.defaults import (
    DEFAULT_NORMALIZATION,
    DOTTI_WINDOW,
    default_linescan_config,
    default_movie_config,
)
from engine.preprocess import Preprocessor

LINE_PX, MOVIE_YX = 512, (64, 512)


def _model(kind: StreamKind, mode: str) -> ModelDir:
    try:
        return ModelDir.load(default_model_path(kind, mode))
    except FileNotFoundError:
        from engine.models.unet import UNet

        config = (default_linescan_config if kind.is_linescan else default_movie_config)(mode)
        return ModelDir.from_network(UNet(config.architecture), config, {"foreground": 0.5})


def _dotti_model() -> ModelDir:
    from engine.models.unet import UNet

    config = ModelConfig(architecture=dotti_unet_config(), axes=StreamKind.MOVIE.axes,
                         window={"accurate": DOTTI_WINDOW},
                         normalization=dict(DEFAULT_NORMALIZATION),
                         calibration={"pixel_um": 0.2, "dt_ms": 6.8}, name="dotti")
    return ModelDir.from_network(UNet(config.architecture), config, {"foreground": 0.5})


def _time_ms(backend, batch: np.ndarray, repeats: int) -> tuple[float, float]:
    """(wall, CPU) ms per call, best of ``repeats`` — the least disturbed run on a shared
    machine. CPU time (all threads of this process) is robust to other processes' load."""
    backend.predict(batch)  # warm-up (allocations, kernel selection)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        backend.predict(batch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 1e3 * min(walls), 1e3 * min(cpus)


def bench_model(label: str, model: ModelDir, mode: str, spatial: tuple[int, ...],
                backends: list[str], repeats: int, threads: int | None) -> dict[str, float]:
    """Print one line per backend; return frames/s per backend."""
    geo = model.config.geometry(mode)
    dt_ms = model.config.calibration["dt_ms"]
    batch = np.random.default_rng(0).normal(0, 0.3, (1, 1, geo.frames, *spatial)).astype(np.float32)
    out = {}
    for name in backends:
        backend = (TorchBackend(model, num_threads=threads) if name == "torch"
                   else OnnxRuntimeBackend(model, num_threads=threads))
        ms, cpu_ms = _time_ms(backend, batch, repeats if geo.frames * np.prod(spatial) < 2e7 else 1)
        backend.close()
        per_frame_ms = ms / geo.hop
        out[name] = 1e3 / per_frame_ms
        print(f"{label:<22} {mode:<11} {name:<11} W={geo.frames:<3} hop={geo.hop:<3} "
              f"{ms:8.1f} ms/window (CPU {cpu_ms:8.1f} ms) {per_frame_ms:7.3f} ms/frame "
              f"(CPU {cpu_ms / geo.hop:7.3f}) {out[name]:7.1f} frames/s = "
              f"{out[name] * dt_ms / 1e3:5.2f}x acquisition rate; look-ahead "
              f"{geo.min_lookahead_frames}..{geo.lookahead_frames} frames", flush=True)
    return out


def dotti_frames_per_s(threads: int | None, repeats: int = 1) -> float:
    """Frames/s of Dotti et al.'s movie network through onnxruntime (the default CPU backend)
    on a 64×512 window, including window overlap: the yardstick of CPU speed."""
    model = _dotti_model()
    geo = model.config.geometry("accurate")
    batch = np.random.default_rng(0).normal(0, 0.3, (1, 1, geo.frames, *MOVIE_YX)).astype(
        np.float32)
    backend = OnnxRuntimeBackend(model, num_threads=threads)
    try:
        ms, _ = _time_ms(backend, batch, repeats)
    finally:
        backend.close()
    return 1e3 * geo.hop / ms


def bench_preprocess(spatial: tuple[int, ...], dt_ms: float, n_frames: int) -> float:
    """ms per frame of :class:`Preprocessor` on synthetic counts, in chunks of 64."""
    rng = np.random.default_rng(0)
    data = rng.poisson(200, (n_frames, *spatial)).astype(np.uint16)
    pre = Preprocessor(spatial, dt_ms, blank=100.0)
    pre.push(data[:pre.warmup_frames])
    start = time.perf_counter()
    for first in range(pre.warmup_frames, n_frames, 64):
        pre.push(data[first:first + 64])
    return 1e3 * (time.perf_counter() - start) / (n_frames - pre.warmup_frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument("--skip-dotti-torch", action="store_true",
                        help="skip Dotti's net through torch (minutes on 2 cores)")
    parser.add_argument("--linescan-only", action="store_true",
                        help="the line-scan networks alone (no movie, Dotti or preprocessing)")
    parser.add_argument("--linescan-model", type=Path, default=None, metavar="DIR",
                        help="a line-scan model directory (accurate mode) instead of the "
                             "packaged one: a candidate geometry before it is adopted")
    args = parser.parse_args()
    os.environ.setdefault("CASTREAM_CACHE_DIR", str(Path(tempfile.gettempdir()) / "castream-bench"))
    print(f"CPU cores: {os.cpu_count()}; threads: {args.threads or 'default'}")
    both = ["torch", "onnxruntime"]
    for mode in ("accurate", "low_latency"):
        model = (ModelDir.load(args.linescan_model) if args.linescan_model and mode == "accurate"
                 else _model(StreamKind.LINESCAN, mode))
        bench_model("default line-scan (2D)", model, mode, (LINE_PX,), both, args.repeats,
                    args.threads)
    if args.linescan_only:
        return
    movie = {}
    for mode in ("accurate", "low_latency"):
        movie[mode] = bench_model("default movie (3D)", _model(StreamKind.MOVIE, mode), mode,
                                  MOVIE_YX, both, args.repeats, args.threads)
    dotti_backends = ["onnxruntime"] if args.skip_dotti_torch else both
    dotti = bench_model("Dotti et al. 3D U-Net", _dotti_model(), "accurate", MOVIE_YX,
                        dotti_backends, 1, args.threads)
    for mode, result in movie.items():
        for name, fps in result.items():
            if name in dotti:
                print(f"movie {mode} / Dotti via {name}: {fps / dotti[name]:.1f}x faster")
    for label, spatial, dt_ms, n in (("line-scan 512 px", (LINE_PX,), 1.5, 4000),
                                     ("movie 64x512", MOVIE_YX, 6.8, 600)):
        print(f"preprocess {label}: {bench_preprocess(spatial, dt_ms, n):.3f} ms/frame")


if __name__ == "__main__":
    main()
