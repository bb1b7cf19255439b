"""Cost of a burst of candidate events in one block, with and without the characterization
budget (:mod:`engine.burst`).

A 512-px line-scan (0.14 µm, 1.5 ms/line) with a quiet warm-up and then a grid of
``--sparks`` sparks packed into ~2 s (:func:`acquisition.simulate.burst.burst_linescan`) goes
through one :class:`~engine.analyzer.StreamAnalyzer` (classical detector) in two pushes: the
warm-up, then the whole burst as one block. Printed per setting: seconds for that block,
events, how many were characterized and how many reported as ``burst``, and the CPU model.

Usage: ``python bench/burst.py [--sparks 640] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import math
import time

from machine import cpu_model  # bench/machine.py (the script's folder is on the path)

from acquisition.simulate.burst import BLANK_COUNTS, burst_linescan
from acquisition.stream_kind import StreamKind
from engine.analyzer import StreamAnalyzer, StreamInfo
from engine.burst import BURST_FLAG, BudgetLimits, default_budget
from engine.pipeline import DetectorFactory, EngineConfig

PIXEL_UM, DT_MS = 0.14, 1.5


def run_block(data, quiet: int, limits: BudgetLimits) -> dict:
    factory = DetectorFactory(EngineConfig(detector="classical"))
    info = StreamInfo("burst", StreamKind.LINESCAN, data.shape[1:], PIXEL_UM, DT_MS,
                      blank=BLANK_COUNTS)
    analyzer = StreamAnalyzer(info, factory.detector(info), budget=limits)
    events = analyzer.push(0, data[:quiet])
    t0 = time.perf_counter()
    events += analyzer.push(quiet, data[quiet:])
    block_s = time.perf_counter() - t0
    events += analyzer.finish()
    flagged = sum(BURST_FLAG in e.flags.split(";") for e in events)
    return {"block_s": block_s, "events": len(events), "burst": flagged,
            "characterized": len(events) - flagged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparks", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3, help="best of N per setting")
    args = parser.parse_args()
    data, quiet = burst_linescan(n_sparks=args.sparks, seed=1)
    burst_s = (data.shape[0] - quiet) * DT_MS / 1e3
    print(f"CPU: {cpu_model()}; burst block {data.shape[0] - quiet} lines ({burst_s:.1f} s of "
          f"data), {args.sparks} sparks, classical detector; best of {args.repeats}")
    settings = {"default budget": default_budget(StreamKind.LINESCAN, data.shape[1:],
                                                 PIXEL_UM),
                "no budget": BudgetLimits(capacity=math.inf, rate_per_s=math.inf)}
    print(f"{'setting':<16} {'block s':>8} {'events':>7} {'characterized':>14} {'burst':>6} "
          f"{'ms/event':>9}")
    for label, limits in settings.items():
        runs = [run_block(data, quiet, limits) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["block_s"])
        print(f"{label:<16} {best['block_s']:>8.2f} {best['events']:>7} "
              f"{best['characterized']:>14} {best['burst']:>6} "
              f"{1e3 * best['block_s'] / max(1, best['events']):>9.2f}")


if __name__ == "__main__":
    main()
