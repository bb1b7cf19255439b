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

Movies (``--kind movie --n 16 --n-sim 4 --n-empty 6 --grid 5 6 7 8 9 --variants '{"one box":
[[1, 1]], "+2um x 20ms": [[1, 1], [2, 1]], "+2um x 40ms": [[1, 1], [2, 2]]}'``, 2026-12-05, with
the local significance floor of 4 on): at the shipped 7, development spark / puff 0.885 / 0.733
with one box, 0.890 / 0.688 (+2 µm × 20 ms), 0.896 / 0.688 (+2 µm × 40 ms); simulator spark
0.894 → 0.894 / 0.907, puffs 0.833 throughout; predicted events on the 6 empty development
movies 1 → 2 / 2 (puffs). The best of the wider boxes (+2 µm × 40 ms at 8: development 0.892 /
0.688, simulator 0.901 / 0.833) gives a mean class F1 over both generators of 0.865 against
0.870 for one box at 7: sparks gain what puffs lose, and the empty movies get more false
events, so movies keep one box too.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

import engine.significance as significance_module
from offline.devsim import DevSource
from offline.experiments.rescore import rescore
from offline.experiments.validation import validation_sets
from offline.thresholds import DEV_VAL_SEED

log = logging.getLogger(__name__)

MODELS = {"linescan": "engine/models/default/linescan-accurate",
          "movie": "engine/models/default/movie"}
GRID = [4.0, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 9.0, 10.0]
CLASSES = {"linescan": ("spark",), "movie": ("spark", "puff", "wave")}
VARIANTS = {"one box": [[1, 1]], "+2um x 20ms": [[1, 1], [2, 1]]}


def drop_below(threshold: float):
    """A :func:`~offline.experiments.rescore.rescore` variant: events under ``threshold``
    dropped with their labels, as the tracker's rejection does."""
    def variant(events: list, labels: np.ndarray, _recording) -> tuple[list, np.ndarray]:
        drop = [int(e.event_id) for e in events if e.significance < threshold]
        keep = [e for e in events if not e.significance < threshold]
        return keep, (np.where(np.isin(labels, drop), 0, labels) if drop else labels)
    return variant


def sweep(recordings, grid, kind: str = "linescan") -> dict[float, dict[str, tuple]]:
    """Per threshold, per class: F1 (IoMin, one-to-one) and the number of predicted events,
    from one run per recording."""
    pooled = rescore(recordings, MODELS[kind], {"min_significance": 0.0},
                     {t: drop_below(t) for t in grid})
    return {t: {cls: (p.scores[cls]["f1"], p.one_to_one[cls]["f1"],
                      p.tables["predicted"][cls]["total"]) for cls in CLASSES[kind]}
            for t, p in pooled.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(MODELS), default="linescan")
    parser.add_argument("--n", type=int, default=12, help="recordings per generator")
    parser.add_argument("--n-sim", type=int, default=None,
                        help="simulator validation recordings (default: --n)")
    parser.add_argument("--n-empty", type=int, default=0,
                        help="development validation recordings without events (predicted "
                             "events counted)")
    parser.add_argument("--grid", type=float, nargs="+", default=GRID)
    parser.add_argument("--offset", type=int, default=0,
                        help="first development validation seed after DEV_VAL_SEED")
    parser.add_argument("--no-sim", action="store_true", help="development recordings only")
    parser.add_argument("--variants", type=json.loads, default=VARIANTS,
                        help='JSON {name: [[space, time], ...]} multiples of the box')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n_sim = 0 if args.no_sim else (args.n if args.n_sim is None else args.n_sim)
    sets = validation_sets(args.kind, args.n, n_sim, args.offset)
    data = {name: recs for name, recs in sets.items() if len(recs)}
    if args.n_empty:
        data["empty"] = DevSource(kind=args.kind, seed=DEV_VAL_SEED + args.offset,
                                  params={"empty": True}).lazy(args.n_empty)
    shipped = significance_module.SCALES
    try:
        for name, scales in args.variants.items():
            significance_module.SCALES = tuple(tuple(float(v) for v in s) for s in scales)
            for generator, recordings in data.items():
                row = sweep(recordings, args.grid, args.kind)
                for t, per_class in row.items():
                    log.info("%s, %s, %g: %s", name, generator, t, "  ".join(
                        f"{cls} {f1:.3f}/{one:.3f} ({n} pred.)"
                        for cls, (f1, one, n) in per_class.items()))
    finally:
        significance_module.SCALES = shipped
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
