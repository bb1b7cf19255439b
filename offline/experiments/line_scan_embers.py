"""Line-scan puffs as embers: what reporting them as sparks does, on validation line-scans.

``python -m offline.experiments.line_scan_embers --n 24 --n-sim 24`` runs the default (``auto``)
line-scan detector once per *validation* recording -- development line-scans
(:data:`offline.thresholds.DEV_VAL_SEED` + ``--offset``) and the training simulator's validation
split -- with the ember rule off (:meth:`engine.kind_rules.KindRules.for_stream` as for a movie),
then scores the same events two ways and logs spark / puff / wave F1 (IoMin; one-to-one in
brackets), recall and precision per generator:

* **off**: the events and the annotations as the generators name them (the simulator's
  line-scan ``puff`` class, which its docstring calls "puffs / embers", stays a class);
* **embers**: every predicted puff renamed spark (what the engine now reports: a spark flagged
  ``ember``) and every annotated line-scan puff counted as a spark of subtype ``ember``
  (:func:`offline.evaluate.in_castream_vocabulary`).

No test seed is read. Result (this machine, 2026-12-05, ``--n 24 --n-sim 24``; the numbers
the kind-rules module and docs/RESULTS.md quote):

===========  ==============================  ==============================
variant      development spark F1 (R / P)    simulator spark F1 (R / P)
===========  ==============================  ==============================
off          0.932 (0.885 / 0.985)           0.970 (0.954 / 0.985); puff 0.878
embers       0.945 (0.911 / 0.982)           0.982 (0.964 / 1.000)
===========  ==============================  ==============================
"""

from __future__ import annotations

import argparse
import gc
import logging
from dataclasses import replace
from unittest import mock

import numpy as np

from engine import analyzer as analyzer_module
from engine.kind_rules import KindRules
from offline import evaluate as evaluate_module
from offline.evaluate import pool_results, run_engine, score_recording
from offline.experiments.rescore import with_kind_rules
from offline.experiments.validation import validation_sets

log = logging.getLogger(__name__)

MODEL = "engine/models/default/linescan-accurate"


def _no_embers(thresholds, linescan: bool, dt_ms: float | None = None) -> KindRules:
    return replace(KindRules.from_thresholds(thresholds), dt_ms=dt_ms)


def as_sparks(events: list) -> list:
    """Copies of ``events`` with every puff a spark flagged ``ember``, as the analyzer renames
    them on a line-scan."""
    return with_kind_rules(events, KindRules(puffs_are_embers=True))


def compare(recordings, model: str = MODEL) -> dict:
    """Pooled scores of the two variants over ``recordings`` (the engine runs once each)."""
    scores: dict[str, list] = {"off": [], "embers": []}
    for rec in recordings:
        with mock.patch.object(analyzer_module.KindRules, "for_stream",
                               staticmethod(_no_embers)):
            result = run_engine(rec, model, "accurate", "auto", "auto")
        labels = np.asarray(result.labels)
        with mock.patch.object(evaluate_module, "in_castream_vocabulary", lambda r: r):
            scores["off"].append(score_recording(rec, list(result.events), labels,
                                                 result.quality))
        scores["embers"].append(score_recording(rec, as_sparks(list(result.events)), labels,
                                                result.quality))
        log.info("%s: %d events", rec.name, len(result.events))
        del result, labels
        gc.collect()
    return {key: pool_results(per) for key, per in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="development validation line-scans")
    parser.add_argument("--n-sim", type=int, default=24,
                        help="simulator validation line-scans")
    parser.add_argument("--offset", type=int, default=0, help="first development seed offset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    for name, recs in validation_sets("linescan", args.n, args.n_sim, args.offset).items():
        for variant, result in compare(recs).items():
            cells = []
            for cls in ("spark", "puff", "wave"):
                s, one = result.scores[cls], result.one_to_one.get(cls, {})
                cells.append(f"{cls} {s['f1']:.3f} ({one.get('f1', float('nan')):.3f}) "
                             f"R {s['recall']:.3f} P {s['precision']:.3f}")
            log.info("%s, %-6s %s", name, variant, "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
