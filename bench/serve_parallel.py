"""How much faster ``serve`` analyses N streams with more cores: threads against processes.

N simulated streams (different seeds) are handed to a :class:`~engine.serve.Server` chunk by
chunk, round robin, as fast as it takes them (no ZeroMQ, no publishers, no pacing: nothing
else competes for the CPU), once per configuration:

* ``1 thread``: every stream on one analysis thread (``serve --workers 1``);
* ``N threads``: the post-processing pool (``--workers N``), one process;
* ``N processes``: the analyzers in N analysis processes (``--processes N``), driven by N
  workers.

Printed per configuration: wall time, frames (lines) analysed per second over all streams,
the speed-up over one thread, and the CPU-seconds used per wall second (this process and its
analysis processes). Events are checked to be the same in every configuration. On C cores the
speed-up of N ≤ C streams is at most N; what threads lose to it is the share of the analysis
that holds the interpreter lock.

Usage: ``python bench/serve_parallel.py [--kind linescan|movie] [--streams 2] [--seconds 10]
[--detector auto] [--onnx-threads N]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

from machine import cpu_model, cpu_seconds  # bench/machine.py (the script's folder is on the path)

from acquisition.ingest import ChunkReceived, StreamStarted, StreamStopped
from acquisition.simulate import LinescanParams, MovieParams, simulate_linescan, simulate_movie
from acquisition.wire import ChunkHeader, StartHeader, StopHeader
from engine.pipeline import DetectorFactory, EngineConfig
from engine.serve import Server
from engine.serve_remote import AnalysisProcesses
from engine.sinks import SinkSet

TIMEOUT_S = 3600.0


class _Ingest:
    def stats(self) -> dict:
        return {}

    def queue_depth(self) -> int:
        return 0


class _Sink:
    kind = "store"

    def __init__(self) -> None:
        self.events: dict[str, list] = {}

    def open_stream(self, info: dict) -> None:
        pass

    def write_events(self, stream: str, events: list) -> None:
        self.events.setdefault(stream, []).extend(e.to_dict() for e in events)

    def write_stats(self, stream: str, stats: dict) -> None:
        pass

    def write_cell(self, stream: str, summary: dict) -> None:
        pass

    def close_stream(self, stream: str) -> None:
        pass

    def close(self) -> None:
        pass


def run(recordings: dict, config: EngineConfig, workers: int, processes: int) -> dict:
    sink = _Sink()
    factory = DetectorFactory(config)
    remote = AnalysisProcesses(config, processes, factory.classifier) if processes else None
    if remote is None:
        factory.load_models()
    server = Server(_Ingest(), factory, SinkSet([sink]), workers=workers, processes=remote)
    chunk = 64 if next(iter(recordings.values())).stream_kind.is_linescan else 4
    n = max(r.data.shape[0] for r in recordings.values())
    t0, cpu0 = time.perf_counter(), cpu_seconds(remote)
    for name, rec in recordings.items():
        server.handle(StreamStarted(StartHeader(name, rec.stream_kind.wire_mode,
                                                str(rec.data.dtype), rec.data.shape[1:],
                                                rec.pixel_um, rec.dt_ms, blank=rec.blank)))
    for seq, first in enumerate(range(0, n, chunk), start=1):
        for name, rec in recordings.items():
            frames = rec.data[first:first + chunk]
            server.handle(ChunkReceived(ChunkHeader(name, seq, first, len(frames), 0), frames,
                                        time.perf_counter()))
    for name, rec in recordings.items():
        server.handle(StreamStopped(StopHeader(name, 0, rec.data.shape[0]), None))
    server.drain(TIMEOUT_S)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(remote) - cpu0
    server.close()
    if remote is not None:
        remote.close()
    factory.close()
    if server.failed:
        raise RuntimeError(f"streams failed: {server.failed}")
    frames = sum(r.data.shape[0] for r in recordings.values())
    return {"elapsed_s": elapsed, "fps": frames / elapsed, "cores": cpu / elapsed,
            "events": json.dumps(sink.events, sort_keys=True, default=str)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("linescan", "movie"), default="linescan")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="recording length")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--onnx-threads", type=int, default=None,
                        help="onnxruntime intra-op threads per stream's network in every "
                             "configuration (default: onnxruntime's, one per core, in this "
                             "process; the cores shared out in the analysis processes)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.kind == "linescan":
        recordings = {f"s{i}": simulate_linescan(LinescanParams(duration_s=args.seconds),
                                                 seed=401 + i) for i in range(args.streams)}
    else:
        recordings = {f"s{i}": simulate_movie(MovieParams(n_frames=round(args.seconds / 6.8e-3)),
                                              seed=401 + i) for i in range(args.streams)}
    rec = next(iter(recordings.values()))
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores available, load average "
          f"{os.getloadavg()[0]:.1f}; {args.streams} {args.kind} streams of {rec.data.shape} at "
          f"{rec.dt_ms} ms, detector {args.detector}, onnxruntime threads "
          f"{args.onnx_threads or 'default'}, fed as fast as serve takes them")
    print(f"{'configuration':<16} {'wall s':>8} {'frames/s':>10} {'speed-up':>9} {'cores':>6}")
    options = ({"onnxruntime": {"num_threads": args.onnx_threads}}
               if args.onnx_threads is not None else None)
    config = EngineConfig(detector=args.detector, backend_options=options)
    base = None
    n = args.streams
    for label, workers, processes in (("1 thread", 1, 0), (f"{n} threads", n, 0),
                                      (f"{n} processes", n, n)):
        result = run(recordings, config, workers, processes)
        base = base or result
        same = "" if result["events"] == base["events"] else "  (events differ!)"
        print(f"{label:<16} {result['elapsed_s']:>8.1f} {result['fps']:>10.0f} "
              f"{base['elapsed_s'] / result['elapsed_s']:>8.2f}x {result['cores']:>6.2f}{same}",
              flush=True)


if __name__ == "__main__":
    main()
