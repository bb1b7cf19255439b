"""One matched-filter box for the significance, or the largest z over several
(``engine.significance.SCALES``).

``python -m offline.experiments.significance_scales --n 12`` runs the default line-scan detector
on *validation* recordings only (development, seeds ``DEV_VAL_SEED + --offset`` on, and the
simulator's validation split) once per variant at ``min_significance`` 0, then applies every
threshold of the grid after the fact (an event below it is dropped with its labels, as the
tracker's rejection does) and prints spark F1 (IoMin / one-to-one) per threshold.

Result (this machine, 2026-12-04), spark F1 IoMin / one-to-one at the shipped 6.5:

==============================================  ================  ================
variant                                         12 dev. (0+)      36 dev. (12+)
==============================================  ================  ================
1 µm × 20 ms (shipped)                          0.945 / 0.913     0.912 / 0.877
+ 2 µm × 20 ms                                  0.951 / 0.920     0.913 / 0.879
+ 2 µm × 30 ms                                  0.948 / 0.917     –
+ 2 µm × 40 ms                                  0.950 / 0.917     –
==============================================  ================  ================

The 12 simulator validation line-scans scored 0.975 / 0.968 at 6.5 with every variant. The gain
did not hold on fresh recordings, so the shipped significance keeps one box.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

import engine.significance as significance_module
from offline.datasets import SimulatedSource
from offline.devsim import DevSource
from offline.experiments.rescore import rescore
from offline.thresholds import DEV_VAL_SEED

log = logging.getLogger(__name__)

MODEL = "engine/models/default/linescan-accurate"
GRID = [4.0, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 9.0, 10.0]
VARIANTS = {"one box": [[1, 1]], "+2um x 20ms": [[1, 1], [2, 1]]}


def drop_below(threshold: float):
    """A :func:`~offline.experiments.rescore.rescore` variant: events under ``threshold``
    dropped with their labels, as the tracker's rejection does."""
    def variant(events: list, labels: np.ndarray, _recording) -> tuple[list, np.ndarray]:
        drop = [int(e.event_id) for e in events if e.significance < threshold]
        keep = [e for e in events if not e.significance < threshold]
        return keep, (np.where(np.isin(labels, drop), 0, labels) if drop else labels)
    return variant


def sweep(recordings, grid) -> dict[float, tuple[float, float]]:
    """Spark F1 (IoMin, one-to-one) per threshold, from one run per recording."""
    pooled = rescore(recordings, MODEL, {"min_significance": 0.0},
                     {t: drop_below(t) for t in grid})
    return {t: (p.scores["spark"]["f1"], p.one_to_one["spark"]["f1"]) for t, p in pooled.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="recordings per generator")
    parser.add_argument("--offset", type=int, default=0,
                        help="first development validation seed after DEV_VAL_SEED")
    parser.add_argument("--no-sim", action="store_true", help="development recordings only")
    parser.add_argument("--variants", type=json.loads, default=VARIANTS,
                        help='JSON {name: [[space, time], ...]} multiples of the box')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = {"development": DevSource(kind="linescan", seed=DEV_VAL_SEED + args.offset)}
    if not args.no_sim:
        data["simulator"] = SimulatedSource(kind="linescan", split="val", seed=0)
    shipped = significance_module.SCALES
    try:
        for name, scales in args.variants.items():
            significance_module.SCALES = tuple(tuple(float(v) for v in s) for s in scales)
            for generator, source in data.items():
                row = sweep(source.lazy(args.n), GRID)
                log.info("%s, %s: %s", name, generator, "  ".join(
                    f"{t:g}: {f1:.3f}/{one:.3f}" for t, (f1, one) in row.items()))
    finally:
        significance_module.SCALES = shipped
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
