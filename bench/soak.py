"""Soak: one stream at acquisition pace into one ``castream serve`` for a long time (issue 12:
30 minutes on a quiet machine; RSS within ±10 % after warm-up, file descriptors constant, lag
under 1 s throughout, no stall).

The engine is the real one (:func:`engine.runtime.background_server`: ZeroMQ ingest, raw
recording, analysis, SQLite store) in this process; the publisher is a spawned process sending
the same simulated recording as ``bench/serve_scaling.py`` (line-scan: 512 px, 1.5 ms/line,
10 s looped; movie: 64×512 px, 6.8 ms/frame) in chunks at acquisition pace. Every
``--sample-s`` it samples serve's RSS and open file descriptors (this process and its analysis
processes, ``--processes``: serve's default unless given), the stream's
wall-clock lag (``lag_s``, as the dashboard shows it) and the frames analysed; a *stall* is a
stretch in which frames arrived but none were analysed. It prints a line per minute and a
verdict per criterion at the end (exit status 1 if one fails).

Usage: ``python bench/soak.py [--kind linescan] [--minutes 30] [--warmup-min 2]
[--processes N] [--mode low_latency]``
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
    open_fds,
    rss_mib,
)
from serve_scaling import _recording, publish

from acquisition.stream_kind import StreamKind

MAX_RSS_DRIFT = 0.10
MAX_LAG_S = 1.0


@dataclass
class Trace:
    """Samples of one soak run."""

    t_s: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)
    analysed: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)

    def longest_stall_s(self) -> float:
        """Longest stretch with frames arriving and none analysed."""
        longest, start = 0.0, None
        for i in range(1, len(self.t_s)):
            stalled = (self.analysed[i] == self.analysed[i - 1]
                       and self.received[i] > self.received[i - 1])
            if stalled and start is None:
                start = self.t_s[i - 1]
            elif not stalled and start is not None:
                longest, start = max(longest, self.t_s[i - 1] - start), None
        if start is not None:
            longest = max(longest, self.t_s[-1] - start)
        return longest


def soak(args, workdir: Path) -> Trace:
    from engine.pipeline import EngineConfig
    from engine.runtime import background_server
    from engine.serve_remote import default_processes

    data_path, meta = _recording(args.kind, workdir)
    chunk = 64 if StreamKind(args.kind).is_linescan else 4
    trace = Trace()
    name = f"soak-{args.kind}"
    config = EngineConfig(mode=args.mode, model=args.model)
    processes = default_processes(config) if args.processes is None else args.processes
    print(f"analysis processes: {processes}", flush=True)
    with background_server(endpoint=f"ipc://{workdir}/soak.ipc", store=workdir / "soak.sqlite",
                           record_dir=workdir / "raw", config=config,
                           processes=processes) as server:
        proc = mp.get_context("spawn").Process(
            target=publish, args=(f"ipc://{workdir}/soak.ipc", name, data_path, meta,
                                  args.minutes * 60.0, chunk, 0.0))
        proc.start()
        while name not in server.live and proc.is_alive():
            time.sleep(0.05)  # the publisher's interpreter starting
        t0, next_print = time.monotonic(), 60.0
        while proc.is_alive():
            time.sleep(args.sample_s)
            live = server.live.get(name)
            stats = server.ingest.stats().get(name)
            if live is None or stats is None or stats.state != "running":
                continue  # not started yet, or stopped (its recording closed): not sampled
            now = time.monotonic() - t0
            analysed = live.analyzer.stats.frames_final
            received = stats.frames_received
            trace.t_s.append(now)
            trace.rss_mib.append(rss_mib(server.processes))
            trace.fds.append(open_fds(server.processes))
            trace.lag_s.append(live.lag.lag_s(analysed, time.time()))
            trace.analysed.append(analysed)
            trace.received.append(received)
            if now >= next_print:
                next_print += 60.0
                print(f"{now / 60:5.1f} min  RSS {trace.rss_mib[-1]:7.1f} MiB  fds "
                      f"{trace.fds[-1]:4d}  lag {trace.lag_s[-1]:6.2f} s  analysed "
                      f"{analysed:,} of {received:,}", flush=True)
        proc.join()
    return trace


def verdict(trace: Trace, warmup_s: float) -> bool:
    """Print each criterion with its measured value; True when all hold."""
    after = [i for i, t in enumerate(trace.t_s) if t >= warmup_s]
    if not after:
        print("FAIL: no sample after the warm-up")
        return False
    rss = [trace.rss_mib[i] for i in after]
    ref = rss[0]
    drift = max(abs(v - ref) for v in rss) / ref
    fds = [trace.fds[i] for i in after]
    checks = [
        (drift <= MAX_RSS_DRIFT, f"RSS after warm-up {min(rss):.1f}-{max(rss):.1f} MiB, "
                                 f"largest drift from {ref:.1f} MiB: {100 * drift:.1f} % "
                                 f"(≤ {100 * MAX_RSS_DRIFT:.0f} %)"),
        (min(fds) == max(fds), f"open file descriptors after warm-up {min(fds)}-{max(fds)} "
                               f"(constant)"),
        (max(trace.lag_s) < MAX_LAG_S, f"lag: median {np.median(trace.lag_s):.2f} s, p99 "
                                       f"{np.percentile(trace.lag_s, 99):.2f} s, max "
                                       f"{max(trace.lag_s):.2f} s (< {MAX_LAG_S:g} s)"),
        (trace.longest_stall_s() == 0.0, f"longest stall {trace.longest_stall_s():.1f} s (none)"),
    ]
    for ok, text in checks:
        print(("PASS  " if ok else "FAIL  ") + text)
    return all(ok for ok, _ in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="linescan", choices=["linescan", "movie"])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-min", type=float, default=2.0)
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--mode", choices=("accurate", "low_latency"), default="accurate",
                        help="window mode of the network (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a model directory of the stream's kind instead of the packaged "
                             "one (a candidate before it is adopted)")
    parser.add_argument("--processes", type=int, default=None,
                        help="serve's analysis processes (default: serve's default here)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {load} at the start; "
          f"{args.kind}, {args.minutes:g} min at acquisition pace, default detector, "
          f"{args.mode} mode, raw recording on"
          + (f", model {args.model}" if args.model else ""))
    with tempfile.TemporaryDirectory(prefix="castream-soak-") as tmp:
        trace = soak(args, Path(tmp))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average {load} at the end; {len(trace.t_s)} samples")
    return 0 if verdict(trace, args.warmup_min * 60.0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
