"""Score many post-hoc variants of one engine run per recording.

Experiments whose variants change only what happens *after* the engine (an event's kind, which
events are kept) need not run the engine once per variant: :func:`rescore` runs it once per
recording and scores every variant's ``(events, labels)`` against that recording's truth.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from engine.kind_rules import KindRules
from offline.evaluate import EvaluationResult, pool_results, run_engine, score_recording

log = logging.getLogger(__name__)

#: ``variant(events, labels, recording) -> (events, labels)``: one post-hoc change of the engine's
#: output (the recording for what the events do not carry, e.g. its ``dt_ms``)
Variant = Callable[[list, np.ndarray, Any], tuple[list, np.ndarray]]


def rescore(recordings: Iterable, model: str, thresholds: Mapping[str, float | None],
            variants: Mapping[Hashable, Variant], detector: str = "auto",
            mode: str = "accurate") -> dict[Hashable, EvaluationResult]:
    """Per variant, the pooled scores over ``recordings``; the engine (``detector``: ``auto``,
    as ``analyze`` and ``serve`` run it, or another, in ``mode``, with ``thresholds``
    overridden) runs once per recording."""
    scores: dict[Hashable, list] = {key: [] for key in variants}
    for rec in recordings:
        result = run_engine(rec, model, mode, detector, "auto", thresholds)
        labels = np.asarray(result.labels)
        for key, variant in variants.items():
            events, kept_labels = variant(list(result.events), labels, rec)
            scores[key].append(score_recording(rec, events, kept_labels, result.quality))
        log.info("%s: %d events", rec.name, len(result.events))
        del result, labels
        gc.collect()  # the engine's objects hold large arrays in reference cycles
    return {key: pool_results(per_recording) for key, per_recording in scores.items()}


def with_kind_rules(events: Iterable, rules: KindRules) -> list:
    """Copies of ``events`` with ``rules`` applied as the analyzer applies them."""
    out = []
    for event in events:
        fields = event.to_dict()
        rules.apply(fields)
        out.append(replace(event, kind=fields["kind"], flags=fields["flags"]))
    return out
