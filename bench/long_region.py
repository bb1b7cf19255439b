"""Cost of a long region: a brightness step under a whole line-scan, as ``castream analyze``
meets it.

The recording is a development validation line-scan (:mod:`offline.devsim`, seed
10,001,319: 5,681 lines × 1,024 px at 0.69 ms/line, 0.16 µm/px, no extracellular pixel) whose
signal above its offset is raised by ``--step`` (+57 %, the soak's looping data) over lines
``--from``–``--to``; without ``--step`` it is the recording as drawn. It goes through
:func:`engine.analyze_file.analyze_file` (default detector, the true offset given, as with
``--blank``) ``--repeats`` times; printed: the CPU model, wall seconds (median), the compute
delay p99 of the last run, and the events by kind.

Usage: ``python bench/long_region.py [--step 1.57] [--from 2000] [--to 4500] [--repeats 1]``
(to measure another checkout, run its copy with ``PYTHONPATH=<that checkout>``: the script's
own folder, not the working directory, is first on the path)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from machine import cpu_model  # bench/machine.py (the script's folder is on the path)

from engine.analyze_file import analyze_file
from engine.pipeline import EngineConfig
from offline.devsim import DevSource
from offline.experiments.validation import DEV_VAL_SEED

SEED_OFFSET = 1319


def step_recording(step: float, start: int, stop: int):
    """The recording, its signal above the offset times ``step`` on lines ``start:stop``."""
    rec = DevSource(kind="linescan", seed=DEV_VAL_SEED + SEED_OFFSET).lazy(1)[0]
    counts = np.asarray(rec.data, np.float64)
    counts[start:stop] = rec.blank + (counts[start:stop] - rec.blank) * step
    return rec, np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=1.57)
    parser.add_argument("--from", dest="start", type=int, default=2000)
    parser.add_argument("--to", dest="stop", type=int, default=4500)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rec, counts = step_recording(args.step, args.start, args.stop)
    seconds = counts.shape[0] * rec.dt_ms / 1e3
    print(f"CPU: {cpu_model()}; {counts.shape[0]} lines x {counts.shape[1]} px "
          f"({seconds:.1f} s of data), signal x{args.step:g} on lines {args.start}-{args.stop}")
    walls, summary = [], {}
    with tempfile.TemporaryDirectory(prefix="castream-long-region-") as folder:
        path = Path(folder) / "step.tif"
        tifffile.imwrite(path, counts)
        for i in range(args.repeats):
            t0 = time.perf_counter()
            summary = analyze_file(path, Path(folder) / f"out{i}", EngineConfig(),
                                   pixel_um=rec.pixel_um, dt_ms=rec.dt_ms, blank=rec.blank,
                                   axes="TX")
            walls.append(time.perf_counter() - t0)
    kinds = {key[2:]: summary.get(key) for key in ("n_sparks", "n_puffs", "n_waves")}
    print(f"wall s (median of {args.repeats}) {statistics.median(walls):.1f}; "
          f"delay p99 ms {summary.get('delay_p99_ms', float('nan')):.0f}; "
          f"events {summary.get('n_events')} {kinds}")


if __name__ == "__main__":
    main()
