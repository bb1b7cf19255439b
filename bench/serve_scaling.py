"""How many streams one ``castream serve`` keeps up with: N line-scan or N movie streams at
acquisition pace into one serve, per N.

The engine is the real one (:func:`engine.runtime.background_server`: ZeroMQ ingest, raw
recording, dispatcher and ``--workers`` post-processing threads, SQLite store) in this process
(the streams' analyzers in ``--processes`` processes where that is not 0); each stream is a publisher in its
own process (:class:`acquisition.publisher.Publisher`, spawned), which sends a simulated
recording in chunks at acquisition pace (line-scans: 512 px, 1.5 ms/line, 10 s looped; movies:
64×512 px, 6.8 ms/frame, 500 frames looped) for ``--seconds``. Sampled every 0.5 s while the
streams run and until serve has analysed everything (at most ``--max-drain-s`` after the
publishers stop). Printed per N and per number of workers (``--workers 1,2``: each N is run
once per value):

* frames/s in (received by the ingest, from its first message to the publishers' exit) and
  analysed (final and post-processed, over the time until serve was done);
* lag: the largest ``lag_s`` seen (recording the analysis was behind the ingest, look-ahead
  included) and ``done after``: seconds from the last publisher's stop to the last stream's
  analysis finishing (how late the last event came);
* compute delay p50/p99, pooled over streams (chunk arrival at the ingest → its frames
  post-processed, queue time included);
* RSS of serve (this process and its analysis processes; publishers excluded): peak and at
  the end, MiB;
* CPU: serve's CPU-seconds per wall second (cores busy; its analysis processes included) and
  as a percentage of all cores;
* load: the machine's 1-minute load average when the run ended (the CPU may be shared).

``real time`` = done after ≤ 2 s and p99 ≤ 500 ms (the issue's bar). Publishers run in
other processes and take CPU from the same cores.

Usage: ``python bench/serve_scaling.py [--kinds linescan,movie] [--streams 1,2,4]
[--workers 1,2] [--processes 0,2] [--seconds 20] [--detector auto]``
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from machine import (  # bench/machine.py (the script's folder is on the path)
    cpu_model,
    cpu_seconds,
    rss_mib,
)

from acquisition.simulate import LinescanParams, MovieParams, simulate_linescan, simulate_movie
from acquisition.stream_kind import StreamKind

MAX_P99_MS = 500.0
MAX_DONE_AFTER_S = 2.0
SAMPLE_S = 0.5


# -- publishers (each in its own process) ------------------------------------------------------
def publish(endpoint: str, stream: str, data_path: str, meta: dict, seconds: float,
            chunk: int, offset_s: float) -> None:
    """Send the recording at ``data_path`` at acquisition pace for ``seconds`` (looped)."""
    from acquisition.publisher import Publisher

    data = np.load(data_path, mmap_mode="r")
    n_total = int(seconds * 1e3 / meta["dt_ms"])
    time.sleep(offset_s)  # spread chunk arrivals across streams
    with Publisher(endpoint, stream=stream, chunk_lines=chunk) as pub:
        pub.start(meta["mode"], str(data.dtype), data.shape[1:], pixel_um=meta["pixel_um"],
                  dt_ms=meta["dt_ms"], blank=meta["blank"])
        t0 = time.monotonic()
        for first in range(0, n_total, chunk):
            due = t0 + first * meta["dt_ms"] / 1e3
            time.sleep(max(0.0, due - time.monotonic()))
            idx = np.arange(first, min(n_total, first + chunk)) % data.shape[0]
            pub.send(np.ascontiguousarray(data[idx]))


# -- one run ---------------------------------------------------------------------------------------
@dataclass
class Samples:
    lag_s: float = 0.0
    rss_peak_mib: float = 0.0
    analyzers: dict = field(default_factory=dict)


def _sample(server, samples: Samples) -> None:
    ingest = server.ingest.stats()
    for name, live in list(server.live.items()):
        samples.analyzers[name] = live.analyzer
        received = ingest[name].frames_received if name in ingest else 0
        lag = (received - live.analyzer.stats.frames_final) * live.analyzer.info.dt_ms / 1e3
        samples.lag_s = max(samples.lag_s, lag)
    samples.rss_peak_mib = max(samples.rss_peak_mib, rss_mib(server.processes))


def run(kind: str, n: int, workers: int, args, data_path: str, meta: dict,
        workdir: Path, processes: int = 0) -> dict:
    from engine.pipeline import EngineConfig
    from engine.runtime import background_server

    config = EngineConfig(detector=args.detector, mode=args.mode, backend=args.backend)
    tag = f"{kind}-{n}-w{workers}-p{processes}"
    endpoint = f"ipc://{workdir}/serve-{tag}.ipc"
    chunk = 64 if StreamKind(kind).is_linescan else 4
    period_s = chunk * meta["dt_ms"] / 1e3
    samples = Samples()
    with background_server(endpoint=endpoint, store=workdir / f"{tag}.sqlite",
                           record_dir=None if args.no_record else workdir / f"raw-{tag}",
                           config=config, workers=workers, processes=processes) as server:
        spawn = mp.get_context("spawn")
        procs = [spawn.Process(target=publish, args=(endpoint, f"{kind}-{i}", data_path, meta,
                                                     args.seconds, chunk, i * period_s / n))
                 for i in range(n)]
        for proc in procs:
            proc.start()
        while not server.ingest.stats() and any(proc.is_alive() for proc in procs):
            time.sleep(0.02)  # publishers starting (spawned interpreters)
        cpu0, t0 = cpu_seconds(server.processes), time.monotonic()
        while any(proc.is_alive() for proc in procs):
            time.sleep(SAMPLE_S)
            _sample(server, samples)
        t_published = time.monotonic()
        while server.n_done < n and time.monotonic() - t_published < args.max_drain_s:
            _sample(server, samples)
            server.wait_finished(n, SAMPLE_S)
        t_done, cpu1 = time.monotonic(), cpu_seconds(server.processes)
        rss_end = rss_mib(server.processes)
        received = sum(s.frames_received for name, s in server.ingest.stats().items()
                       if name.startswith(kind))
    analysed = sum(a.stats.frames_final for a in samples.analyzers.values())
    delays = np.concatenate([np.fromiter(a.stats.delays_ms, float)
                             for a in samples.analyzers.values()] or [np.zeros(0)])
    p50, p99 = np.percentile(delays, [50, 99]) if delays.size else (np.nan, np.nan)
    cpu_s = cpu1 - cpu0
    done_after = t_done - t_published if server.n_done >= n else float("inf")
    return {"kind": kind, "n": n, "workers": workers, "processes": processes, "in_fps": received / (t_published - t0),
            "analysed_fps": analysed / (t_done - t0), "lag_s": samples.lag_s,
            "done_after_s": done_after, "p50_ms": float(p50), "p99_ms": float(p99),
            "rss_peak_mib": samples.rss_peak_mib, "rss_end_mib": rss_end,
            "cores_busy": cpu_s / (t_done - t0), "load": os.getloadavg()[0],
            "real_time": done_after <= MAX_DONE_AFTER_S and p99 <= MAX_P99_MS}


# -- main --------------------------------------------------------------------------------------
def _recording(kind: str, workdir: Path) -> tuple[str, dict]:
    if StreamKind(kind).is_linescan:
        rec = simulate_linescan(LinescanParams(duration_s=10.0), seed=301)
    else:
        rec = simulate_movie(MovieParams(n_frames=500), seed=302)
    path = workdir / f"{kind}.npy"
    np.save(path, rec.data)
    meta = {"mode": rec.stream_kind.wire_mode, "pixel_um": rec.pixel_um,
            "dt_ms": rec.dt_ms, "blank": rec.blank}
    return str(path), meta


def _print_row(r: dict) -> None:
    print(f"{r['kind']:<9} {r['n']:>3} {r['workers']:>3} {r['processes']:>3} {r['in_fps']:>9.0f} "
          f"{r['analysed_fps']:>9.0f} {r['lag_s']:>7.2f} {r['done_after_s']:>8.1f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
          f"{r['rss_peak_mib']:>6.0f} {r['rss_end_mib']:>6.0f} {r['cores_busy']:>6.2f} "
          f"{100 * r['cores_busy'] / os.cpu_count():>5.0f}% {'yes' if r['real_time'] else 'NO':>5} "
          f"{r['load']:>5.1f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="linescan,movie")
    parser.add_argument("--streams", default="1,2,4", help="N values, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per run")
    parser.add_argument("--workers", default="1,2",
                        help="serve's post-processing threads, comma-separated: each N is run "
                             "once per value")
    parser.add_argument("--processes", default="0",
                        help="serve's analysis processes (0: analysis in serve's process), "
                             "comma-separated: each N and workers value is run once per value")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--mode", default="accurate")
    parser.add_argument("--backend", default="auto", help="network backend (engine's choice)")
    parser.add_argument("--max-drain-s", type=float, default=60.0,
                        help="stop waiting for the analysis this long after the publishers")
    parser.add_argument("--no-record", action="store_true", help="no raw recording")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {load} before the runs; "
          f"detector {args.detector}, mode "
          f"{args.mode}, backend {args.backend}, {args.seconds:g} s per run, raw recording "
          f"{'off' if args.no_record else 'on'}")
    print(f"{'kind':<9} {'N':>3} {'wk':>3} {'pr':>3} {'in fps':>9} {'anal fps':>9} {'lag s':>7} {'done +s':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'RSS pk':>6} {'RSS':>6} {'cores':>6} {'cpu%':>6} "
          f"{'real':>5} {'load':>5}")
    with tempfile.TemporaryDirectory(prefix="castream-scaling-") as tmp:
        workdir = Path(tmp)
        for kind in args.kinds.split(","):
            data_path, meta = _recording(kind, workdir)
            for n in (int(v) for v in args.streams.split(",")):
                for workers in (int(v) for v in args.workers.split(",")):
                    for processes in (int(v) for v in args.processes.split(",")):
                        _print_row(run(kind, n, workers, args, data_path, meta, workdir,
                                       processes))


if __name__ == "__main__":
    main()
