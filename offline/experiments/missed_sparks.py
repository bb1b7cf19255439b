"""Why the default detector misses the sparks it misses, on validation recordings.

``python -m offline.experiments.missed_sparks [--kind linescan] [--n 24] [--offset 0]`` runs the
default (``auto``) detector on development validation recordings (seeds ``DEV_VAL_SEED`` +
``offset``, never the test seeds) with the analyzer's significance test watched, and sorts
every annotated spark that no reported *spark* matches (the evaluation's own IoMin matching,
as :func:`offline.evaluate.score_recording` does; what its spark recall counts) into:

* **named wave / named puff**: matched only by an event of that class (an ember called a puff,
  a spark swallowed by a wave's region);
* **inside another event**: its peak pixel lies in the mask of an accepted candidate that did
  not match it (a merged neighbour, a larger region);
* **not significant**: a candidate at its peak was rejected by the significance test;
* **never a candidate**: no candidate region touched its peak (below the detectors' criteria).

It logs one line per recording and the totals, with the subtypes and amplitudes of the misses.

It also sorts every reported spark that matches no annotated spark (what its precision counts)
into:

* **on a wave / on a puff**: it overlaps an annotated event of that class;
* **fragment**: it overlaps an annotated spark, but below the matching's IoMin;
* **on background**: it overlaps no annotated event (noise, a background structure);

with the significance the engine gave it (``significance`` on each event).

Result (this machine, 2026-12-05, ``--n 48 --offset 48``): 151 of 1,071 sparks missed and 121
of 980 reported sparks false, 88 of these on one 0.55-ms line-scan whose wave plateau the
hybrid called sparks (the split cut it into pieces); after line-scan ``network_spark_share``
0.8 (since reverted: ``hybrid.json`` notes) and ``wide_spark_is_wave_um`` 15
(``postprocess.json``) 132 missed (52
never a candidate, 39 named wave, 33 not significant, 8 inside another event) and 43 of 922
false (23 on background, 11 on a wave, 9 fragments).
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter

import numpy as np

import engine.analyzer as analyzer_module
from acquisition.labels import IGNORE
from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from engine.pipeline import analyze_array
from offline.datasets import LabeledRecording
from offline.devsim import DevSource
from offline.evaluate import true_classes
from offline.metrics import match_instances
from offline.thresholds import DEV_VAL_SEED

log = logging.getLogger(__name__)


class _Watch:
    """Wraps the analyzer's significance test and keeps every candidate it sees."""

    def __init__(self) -> None:
        self.candidates: list[tuple[np.ndarray, tuple[int, ...], bool]] = []
        self._original = analyzer_module.StreamAnalyzer._significant

    def __enter__(self) -> _Watch:
        original = self._original
        watch = self

        def significant(analyzer, instance):
            accepted = original(analyzer, instance)
            watch.candidates.append((instance.mask, tuple(instance.origin), accepted))
            return accepted

        analyzer_module.StreamAnalyzer._significant = significant
        return self

    def __exit__(self, *exc) -> None:
        analyzer_module.StreamAnalyzer._significant = self._original


def _at(candidate, point: tuple[int, ...], reach_px: int) -> bool:
    """Whether ``candidate``'s mask covers ``point`` (t, y, x) within ±``reach_px`` in X."""
    mask, origin, _ = candidate
    t, y, x = (p - o for p, o in zip(point, origin, strict=True))
    if not (0 <= t < mask.shape[0] and 0 <= y < mask.shape[1]):
        return False
    return bool(mask[t, y, max(0, x - reach_px): max(0, x + reach_px + 1)].any())


def classify_misses(rec, events, labels, candidates) -> list[tuple[str, dict]]:
    """``(reason, annotated spark)`` for each annotated spark no event matched."""
    pred_classes = {int(ev.event_id): ev.kind for ev in events}
    ignore = rec.class_mask == IGNORE
    matching = match_instances(rec.instance_mask, true_classes(rec), np.asarray(labels),
                               pred_classes, ignore_mask=ignore if ignore.any() else None)
    matched = {tid for tid, pid in matching.pairs if matching.pred_classes.get(pid) == "spark"}
    named = {}
    for tid, pid in matching.pairs:
        if tid not in matched:
            named.setdefault(tid, matching.pred_classes.get(pid))
    out = []
    for event in rec.events:
        if event["kind"] != "spark" or event["event_id"] in matched:
            continue
        point = (int(round(event["t_peak_ms"] / rec.dt_ms)),
                 0 if rec.stream_kind.is_linescan else int(round(event["y_um"] / rec.pixel_um)),
                 int(round(event["x_um"] / rec.pixel_um)))
        here = [c for c in candidates if _at(c, point, 2)]
        if event["event_id"] in named:
            reason = f"named {named[event['event_id']]}"
        elif any(accepted for *_, accepted in here):
            reason = "inside another event"
        elif here:
            reason = "not significant"
        else:
            reason = "never a candidate"
        out.append((reason, event))
    return out


def kinds_under(rec: LabeledRecording, classes: dict[int, str], labels: np.ndarray,
                event_id: int) -> set:
    """Annotated classes (``classes``: :func:`offline.evaluate.true_classes`) of the instances
    that the predicted event ``event_id`` of ``labels`` overlaps."""
    under = rec.instance_mask[labels == event_id]
    return {classes.get(int(t)) for t in np.unique(under[under > 0])}


def classify_false(rec, events, labels) -> list[tuple[str, float]]:
    """``(reason, significance)`` for each reported spark that matches no annotated spark."""
    classes = true_classes(rec)
    pred_classes = {int(ev.event_id): ev.kind for ev in events}
    ignore = rec.class_mask == IGNORE
    labels = np.asarray(labels)
    matching = match_instances(rec.instance_mask, classes, labels, pred_classes,
                               ignore_mask=ignore if ignore.any() else None)
    good = {pid for tid, pid in matching.pairs if classes.get(tid) == "spark"}
    out = []
    for ev in events:
        pid = int(ev.event_id)
        if ev.kind != "spark" or pid in good or pid not in matching.pred_classes:
            continue
        kinds = kinds_under(rec, classes, labels, pid)
        if "spark" in kinds:
            reason = "fragment"
        elif kinds & {"wave", "puff"}:
            reason = "on a wave" if "wave" in kinds else "on a puff"
        else:
            reason = "on background"
        out.append((reason, float(getattr(ev, "significance", np.nan) or np.nan)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("linescan", "movie"), default="linescan")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    kind = StreamKind.from_model_kind(args.kind)
    model = default_model_path(kind, "accurate")
    recs = DevSource(kind=args.kind, seed=DEV_VAL_SEED + args.offset).lazy(args.n)
    totals: Counter = Counter()
    subtypes: dict[str, Counter] = {}
    n_sparks = 0
    false_totals: Counter = Counter()
    false_sig: dict[str, list[float]] = {}
    n_reported = 0
    for rec in recs:
        with _Watch() as watch:
            result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                                   model_dir=model, blank=rec.blank, detector="auto")
        misses = classify_misses(rec, result.events, result.labels, watch.candidates)
        sparks = sum(e["kind"] == "spark" for e in rec.events)
        n_sparks += sparks
        reasons = Counter(reason for reason, _ in misses)
        totals.update(reasons)
        for reason, event in misses:
            subtypes.setdefault(reason, Counter())[event.get("subtype", "?")] += 1
        false = classify_false(rec, result.events, result.labels)
        n_reported += sum(ev.kind == "spark" for ev in result.events)
        false_totals.update(reason for reason, _ in false)
        for reason, significance in false:
            false_sig.setdefault(reason, []).append(significance)
        log.info("%s: %d sparks, %d missed %s; %d false %s", rec.name, sparks, len(misses),
                 dict(reasons), len(false), dict(Counter(r for r, _ in false)))
    log.info("total: %d sparks, %d missed: %s", n_sparks, sum(totals.values()), dict(totals))
    for reason, counts in subtypes.items():
        log.info("  %s by subtype: %s", reason, dict(counts))
    log.info("reported %d sparks, %d false: %s", n_reported, sum(false_totals.values()),
             dict(false_totals))
    for reason, values in false_sig.items():
        log.info("  %s significance: median %.1f, quartiles %.1f-%.1f", reason,
                 *np.nanpercentile(values, [50, 25, 75]))


if __name__ == "__main__":
    main()
