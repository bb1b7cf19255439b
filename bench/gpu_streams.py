"""GPU benchmark: many concurrent 64×512 full-frame streams at 147 frames/s on one GPU.

For each available GPU backend (TensorRT fp16, torch CUDA fp16):

1. **network alone**: frames/s of the default movie network at its window geometry with
   ``B = min(streams, max_batch)`` windows per call (frames/s = B × hop / time per call), and of
   Dotti et al.'s 3D U-Net (256-frame windows, hop 32) in the same run, for the ratio;
2. **end to end**: N simulated streams (1, 8, 32, 100) driven through the real
   :class:`~engine.serve.Server` in-process (preprocess → windows → cross-stream batcher →
   backend → stitch → post-processing → characterization; no ZeroMQ: the ingest is measured by
   ``bench/ingest_throughput.py``), fed in chunks at the acquisition rate (``--pace realtime``,
   6.8 ms/frame, chunk arrival times staggered across streams) or as fast as possible
   (``--pace max``). One movie is simulated once and replayed by every stream with its own
   offset. Reported: analyzed frames/s, whether it kept up, compute delay p50/p99 (chunk arrival
   → its windows post-processed), GPU memory (``torch.cuda.max_memory_allocated`` — TensorRT's
   own context memory is not in it — and device memory in use from ``mem_get_info``) and CPU
   use (process CPU seconds per wall second, i.e. cores busy). With ``--e2e-repeats N`` each
   stream count runs N times and the median of each figure is reported (not the minimum);
   ``--json`` appends one JSON line per stream count.

Targets (DESIGN.md): ≥ 15,000 frames/s through the network, ≥ 100 streams end to end at
147 frames/s, compute delay p99 ≤ 50 ms.

Without a CUDA GPU it says so and exits 0; ``--cpu-smoke`` runs a tiny CPU version (onnxruntime,
small frames, short streams) to check the script itself.

Usage: ``python bench/gpu_streams.py [--streams 1,8,32,100] [--seconds 20] [--pace realtime]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from machine import cpu_seconds  # bench/machine.py (the script's folder is on the path)

from acquisition.ingest import ChunkReceived, StreamStarted, StreamStopped
from acquisition.simulate import MovieParams, simulate_movie
from acquisition.stream_kind import StreamKind
from acquisition.wire import ChunkHeader, StartHeader, StopHeader
from engine.backends import make_backend
from engine.models import ModelConfig, ModelDir, default_model_path
from engine.models.architecture import dotti_unet_config
from engine.models.defaults import DEFAULT_NORMALIZATION, DOTTI_WINDOW, default_movie_config
from engine.pipeline import DetectorFactory, EngineConfig
from engine.serve import Server
from engine.serve_remote import AnalysisProcesses
from engine.sinks import SinkSet

DT_MS = 6.8  # 147 frames/s
TARGET_NETWORK_FPS, TARGET_STREAMS, TARGET_P99_MS = 15_000, 100, 50.0
MAX_BEHIND_S = 0.5  # realtime pace: "kept up" if the last chunk was fed at most this late
ABORT_BEHIND_S = 5.0  # realtime pace: a run this far behind stops (bounded run time)
GPU_BACKENDS = {  # label → (backend name, constructor options)
    "tensorrt-fp16": ("tensorrt", {"precision": "fp16"}),
    "torch-cuda-bf16": ("torch", {"dtype": "bfloat16", "autocast": True, "channels_last": True,
                                  "cuda_graphs": True}),
    "torch-cuda-bf16-half-out": ("torch", {"dtype": "bfloat16", "autocast": True,
                                          "channels_last": True, "cuda_graphs": True,
                                          "output_dtype": "float16"}),
    "torch-cuda-fp16": ("torch", {"dtype": "float16", "channels_last": True}),
}
CPU_BACKENDS = {"onnxruntime-cpu": ("onnxruntime", {})}


@dataclass
class Settings:
    streams: list[int]
    seconds: float
    pace: str
    frame_yx: tuple[int, int]
    max_batch: int
    max_wait_ms: float
    chunk_frames: int
    repeats: int
    device: str
    backends: dict[str, tuple[str, dict]]
    dotti: bool
    e2e_repeats: int = 1
    json: str | None = None
    workers: int = 1
    detector: str = "auto"
    processes: int = 0  # serve --processes: analyzers in processes (no cross-stream batching)
    dense_device: str = "auto"  # EngineConfig.dense_device: "cpu" keeps the per-pixel work there


def _movie_model(root: Path) -> Path:
    """The packaged movie model, or the default architecture with random weights (speed does
    not depend on the weights), saved under ``root``."""
    try:
        return default_model_path(StreamKind.MOVIE, "accurate")
    except FileNotFoundError:
        import torch

        from engine.models.unet import UNet

        torch.manual_seed(0)
        config = default_movie_config("accurate")
        return ModelDir.from_network(UNet(config.architecture), config,
                                     {"foreground": 0.5}).save(root / "movie")


def _dotti_model() -> ModelDir:
    from engine.models.unet import UNet

    config = ModelConfig(architecture=dotti_unet_config(), axes=StreamKind.MOVIE.axes,
                         window={"accurate": DOTTI_WINDOW},
                         normalization=dict(DEFAULT_NORMALIZATION),
                         calibration={"pixel_um": 0.2, "dt_ms": DT_MS}, name="dotti")
    return ModelDir.from_network(UNet(config.architecture), config, {"foreground": 0.5})


def _options(name: str, options: dict, settings: Settings) -> dict:
    extra = {"max_batch": settings.max_batch} if name == "tensorrt" else {}
    return {name: {**options, **extra}}


# -- 1. network alone --------------------------------------------------------------------------
def network_fps(model: ModelDir, label: str, settings: Settings, batch: int) -> float:
    """Frames/s through ``label``'s backend with ``batch`` windows per call (best of repeats)."""
    name, options = settings.backends[label]
    backend = make_backend(model, name, settings.device, _options(name, options, settings))
    geo = model.config.geometry("accurate")
    windows = np.random.default_rng(0).normal(
        0, 0.3, (batch, 1, geo.frames, *settings.frame_yx)).astype(np.float32)
    backend.predict(windows)  # warm-up: engine build/load, autotuning, graph capture
    times = []
    for _ in range(settings.repeats):
        start = time.perf_counter()
        backend.predict(windows)
        times.append(time.perf_counter() - start)
    backend.close()
    return batch * geo.hop / min(times)


# -- 2. end to end -----------------------------------------------------------------------------
class _StubIngest:
    def stats(self) -> dict:
        return {}

    def queue_depth(self) -> int:
        return 0


def _start_items(n_streams: int, recording) -> list[StreamStarted]:
    mode = StreamKind.MOVIE.wire_mode
    return [StreamStarted(StartHeader(f"s{i}", mode, "uint16", recording.data.shape[1:],
                                      recording.pixel_um, DT_MS, blank=recording.blank))
            for i in range(n_streams)]


def _chunk(data: np.ndarray, stream: int, first: int, n: int) -> np.ndarray:
    """Frames ``first..first+n`` of stream ``stream``: the simulated movie replayed from its
    own offset (wrapping around)."""
    idx = (first + 97 * stream + np.arange(n)) % data.shape[0]
    return data.take(idx, axis=0)


def run_streams(model_path: Path, label: str, settings: Settings, n_streams: int,
                recording) -> dict:
    """Drive ``n_streams`` through one in-process Server; returns the measurements."""
    import torch

    name, options = settings.backends[label]
    config = EngineConfig(model=model_path, backend=name, device=settings.device, batch=True,
                          max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                          backend_options=_options(name, options, settings),
                          detector=settings.detector, dense_device=settings.dense_device)
    factory = DetectorFactory(config)
    remote = (AnalysisProcesses(config, settings.processes, factory.classifier)
              if settings.processes else None)
    server = Server(_StubIngest(), factory, SinkSet([]), stats_interval_s=1e9,
                    workers=max(settings.workers, settings.processes), processes=remote)
    for item in _start_items(n_streams, recording):
        server.handle(item)
    server.drain()  # stream starts (backend warm-up) are not timed
    cuda = settings.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    n_frames = int(settings.seconds * 1e3 / DT_MS)
    analyzers = [live.analyzer for live in server.live.values()]
    start, cpu_start = time.perf_counter(), cpu_seconds(remote)
    fed = _feed(server, recording.data, n_streams, n_frames, settings, start)
    behind_s = time.perf_counter() - start - fed * DT_MS / 1e3  # realtime: feeding lagged by
    aborted = fed < n_frames
    n_frames = fed
    for i in range(n_streams):
        server.handle(StreamStopped(StopHeader(f"s{i}", 0, n_frames), None))
    server.close()  # with workers: wait until every stream has finished
    wall = time.perf_counter() - start
    result = _measure(analyzers, factory, n_frames, wall, settings)
    result["cpu_cores"] = (cpu_seconds(remote) - cpu_start) / wall
    result["processes"] = settings.processes
    result["behind_s"] = behind_s
    result["aborted"] = aborted
    result["kept_up"] = not aborted and (settings.pace != "realtime" or behind_s <= MAX_BEHIND_S)
    if cuda:
        free, total = torch.cuda.mem_get_info()
        if remote is None:  # this process's allocations (with processes: gpu_used_gib only)
            result["gpu_alloc_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["gpu_used_gib"] = (total - free) / 2**30
    if remote is not None:
        remote.close()
    factory.close()
    return result


def _feed(server: Server, data: np.ndarray, n_streams: int, n_frames: int,
          settings: Settings, start: float) -> int:
    """Chunks round robin; at the acquisition rate, stream ``i`` is phase-shifted by
    ``i / n_streams`` of a chunk period so arrivals spread evenly. Returns the frames fed per
    stream: fewer than ``n_frames`` when the analysis fell more than ``ABORT_BEHIND_S``
    behind the acquisition (the run stops there: it has not kept up)."""
    period = settings.chunk_frames * DT_MS / 1e3
    realtime = settings.pace == "realtime"
    for k, first in enumerate(range(0, n_frames, settings.chunk_frames)):
        if realtime and time.perf_counter() - (start + k * period) > ABORT_BEHIND_S:
            return first
        n = min(settings.chunk_frames, n_frames - first)
        for i in range(n_streams):
            due = start + (k + i / n_streams) * period if realtime else time.perf_counter()
            _wait_until(server, due)
            header = ChunkHeader(f"s{i}", k + 1, first, n, 0)
            server.handle(ChunkReceived(header, _chunk(data, i, first, n), t_received=due))
            server.poll_batches()
    return n_frames


def _wait_until(server: Server, due: float) -> None:
    """Run due batches while waiting for the next chunk's arrival time."""
    while (now := time.perf_counter()) < due:
        server.poll_batches(now)
        deadline = server.batcher.seconds_to_deadline(now) if server.batcher else None
        time.sleep(max(0.0, min(due - now, deadline if deadline is not None else 1.0)))


def _measure(analyzers: list, factory: DetectorFactory, n_frames: int, wall: float,
             settings: Settings) -> dict:
    """Pooled compute delays of every stream, throughput, batching."""
    delays = np.concatenate([np.fromiter(a.stats.delays_ms, float) for a in analyzers])
    p50, p99 = np.percentile(delays, [50, 99]) if delays.size else (np.nan, np.nan)
    batcher = factory.batcher if settings.processes == 0 else None
    total = len(analyzers) * n_frames
    return {"streams": len(analyzers), "frames": total, "wall_s": wall, "fps": total / wall,
            "delay_p50_ms": float(p50), "delay_p99_ms": float(p99),
            "mean_batch": batcher.stats.mean_batch if batcher else 1.0,
            "events": sum(a.stats.events for a in analyzers)}


# -- main --------------------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings | None:
    import torch

    streams = [int(n) for n in args.streams.split(",")]
    if args.cpu_smoke:
        return Settings(streams=[1, 2], seconds=2.0,
                        pace=args.pace, frame_yx=(16, 64), max_batch=4, max_wait_ms=20.0,
                        chunk_frames=args.chunk_frames, repeats=2, device="cpu",
                        backends=dict(CPU_BACKENDS), dotti=False,
                        e2e_repeats=args.e2e_repeats, json=args.json, workers=args.workers,
                        detector=args.detector, processes=args.processes,
                        dense_device=args.dense_device)
    if not torch.cuda.is_available():
        return None
    backends = {k: v for k, v in GPU_BACKENDS.items()
                if k in args.backends.split(",") and _available(v[0])}
    return Settings(streams=streams, seconds=args.seconds, pace=args.pace, frame_yx=(64, 512),
                    max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                    chunk_frames=args.chunk_frames, repeats=args.repeats, device="cuda",
                    backends=backends, dotti=not args.no_dotti, e2e_repeats=args.e2e_repeats,
                    json=args.json, workers=args.workers, detector=args.detector,
                    processes=args.processes, dense_device=args.dense_device)


def _available(name: str) -> bool:
    import importlib.util

    if name == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        print("tensorrt not installed: skipping the TensorRT backend")
        return False
    return True


def _header(settings: Settings) -> None:
    if settings.device.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
              f"sm{props.major}{props.minor}; torch {torch.__version__}")
    print(f"streams {settings.streams}, {settings.seconds:g} s each at {1e3 / DT_MS:.0f} "
          f"frames/s, frames {settings.frame_yx}, pace {settings.pace}, max_batch "
          f"{settings.max_batch}, max_wait {settings.max_wait_ms:g} ms, chunks of "
          f"{settings.chunk_frames} frames, {settings.workers} post-processing worker(s), "
          f"{settings.processes} analysis process(es), "
          f"detector {settings.detector}")
    print(f"targets: network >= {TARGET_NETWORK_FPS} frames/s, >= {TARGET_STREAMS} streams "
          f"end to end, compute delay p99 <= {TARGET_P99_MS:g} ms")


def bench_network(settings: Settings, model: ModelDir) -> None:
    batches = sorted({min(n, settings.max_batch) for n in settings.streams})
    for label in settings.backends:
        for batch in batches:
            fps = network_fps(model, label, settings, batch)
            line = f"network {label:<16} movie  batch {batch:<3} {fps:10.0f} frames/s"
            if settings.dotti:
                dotti = network_fps(_dotti_model(), label, settings, batch)
                line += f" | Dotti {dotti:9.0f} frames/s | ratio {fps / dotti:5.1f}x"
            ok = "PASS" if fps >= TARGET_NETWORK_FPS else "below target"
            print(f"{line} | {ok}", flush=True)


def bench_end_to_end(settings: Settings, model_path: Path) -> None:
    n_frames = max(200, min(1000, int(settings.seconds * 1e3 / DT_MS)))  # replayed, wraps
    recording = simulate_movie(MovieParams(n_frames=n_frames, n_y=settings.frame_yx[0],
                                           n_x=settings.frame_yx[1]), seed=0)
    for label in settings.backends:
        # one short discarded stream first: lazy imports and first-use costs are not a
        # stream count's figure
        if not settings.processes:  # (analysis processes warm up when they start)
            run_streams(model_path, label, replace(settings, seconds=1.0), 1, recording)
        for n in settings.streams:
            runs = [run_streams(model_path, label, settings, n, recording)]
            while runs[0]["kept_up"] and len(runs) < settings.e2e_repeats:  # repeat what held
                runs.append(run_streams(model_path, label, settings, n, recording))
            r = median_run(runs)
            detector = (settings.detector if settings.dense_device == "auto"
                        else f"{settings.detector}, per-pixel work on {settings.dense_device}")
            r.update(backend=label, workers=max(settings.workers, settings.processes),
                     detector=detector, dense_device=settings.dense_device)
            if settings.json:
                with open(settings.json, "a") as handle:
                    handle.write(json.dumps(r, default=float) + "\n")
            ok = r["kept_up"] and r["delay_p99_ms"] <= TARGET_P99_MS
            memory = (f" | GPU alloc {r['gpu_alloc_gib']:.1f} GiB, used {r['gpu_used_gib']:.1f}"
                      f" GiB" if "gpu_alloc_gib" in r else
                      f" | GPU used {r['gpu_used_gib']:.1f} GiB" if "gpu_used_gib" in r else "")
            print(f"e2e {label:<16} {n:>4} streams {r['fps']:9.0f} frames/s "
                  f"({r['wall_s']:.1f} s) kept up {r['kept_up']!s:<5} (behind {r['behind_s']:+.2f} s) "
                  f"delay p50 "
                  f"{r['delay_p50_ms']:6.1f} p99 {r['delay_p99_ms']:6.1f} ms | batch "
                  f"{r['mean_batch']:.1f} | {r['events']} events{memory} | CPU "
                  f"{r['cpu_cores']:.2f} cores | median of {r['repeats']} | "
                  f"{'PASS' if ok else 'FAIL'}", flush=True)


def median_run(runs: list[dict]) -> dict:
    """Each number: the median over the repeats; kept up only if every repeat kept up."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = type(value)(np.median([r[key] for r in runs]))
    out["kept_up"] = all(r["kept_up"] for r in runs)
    out["repeats"] = len(runs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,8,32,100")
    parser.add_argument("--seconds", type=float, default=20.0, help="stream duration")
    parser.add_argument("--pace", choices=("realtime", "max"), default="realtime")
    parser.add_argument("--backends", default=",".join(GPU_BACKENDS))
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--chunk-frames", type=int, default=8, help="frames per chunk")
    parser.add_argument("--repeats", type=int, default=20, help="network timing repeats")
    parser.add_argument("--no-dotti", action="store_true", help="skip Dotti's network")
    parser.add_argument("--skip-network", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--e2e-repeats", type=int, default=1,
                        help="end-to-end runs per stream count (median reported)")
    parser.add_argument("--json", help="append one JSON line per end-to-end measurement")
    parser.add_argument("--workers", type=int, default=1,
                        help="post-processing threads of the server (serve --workers)")
    parser.add_argument("--processes", type=int, default=0,
                        help="analysis processes (serve --processes; each builds its own "
                             "backend, no cross-stream batching); 0: in this process")
    parser.add_argument("--detector", default="auto", choices=("auto", "network", "classical"),
                        help="auto: the default (hybrid for the movie model); network: no "
                             "classical half, post-processing of the network alone")
    parser.add_argument("--dense-device", default="auto", choices=("auto", "cpu"),
                        help="where the per-pixel reductions run (engine/dense_ops.py): auto "
                             "on the network's GPU; cpu: numpy, as before they moved (the "
                             "before of a before/after)")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny CPU run (onnxruntime) to check this script")
    args = parser.parse_args()
    settings = _settings(args)
    if settings is None:
        print("no CUDA GPU visible to torch: nothing to benchmark here (use --cpu-smoke to "
              "check the script on CPU)")
        return 0
    os.environ.setdefault("CASTREAM_CACHE_DIR",
                          str(Path(tempfile.gettempdir()) / "castream-bench"))
    _header(settings)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = _movie_model(Path(tmp))
        if not args.skip_network:
            bench_network(settings, ModelDir.load(model_path))
        if not args.skip_e2e:
            bench_end_to_end(settings, model_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
