"""An event's kind from its duration: the physics a detector's class probabilities may miss.

A Ca²⁺ spark is one release site (or a tight cluster) firing for ~10–20 ms; its full duration at
half maximum (FDHM) at the peak is ~20–50 ms (Cheng & Lederer 2008, Physiol Rev 88:1491). A
puff -- a cluster of sites firing in turn -- lasts well over 100 ms. A detector trained on one
simulator's puffs can call a longer, dimmer cluster a spark (castream's movie network does on
the development generator: README, "In distribution and on data the training never saw").

With the model directory's thresholds (``puff_min_fdhm_ms``, ``spark_max_fdhm_ms``; tuned on
validation data only, ``python -m offline.experiments.kind_by_duration``), applied after the
event is characterized and its unresolvable values emptied (:mod:`engine.honesty`):

* a ``spark`` whose measured FDHM is at least ``puff_min_fdhm_ms`` becomes a ``puff``, flagged
  ``kind_by_fdhm``;
* a ``puff`` whose measured FDHM is under ``spark_max_fdhm_ms`` becomes a ``spark``, flagged
  the same way.

An event without a measured FDHM (saturated, unresolved, in a burst) keeps its kind. Waves are
never touched: their kind comes from their extent.
"""

from __future__ import annotations

import math

#: flag token of an event whose kind this rule changed
KIND_FLAG = "kind_by_fdhm"
#: threshold keys (``thresholds.json`` / ``hybrid.json`` / overrides)
PUFF_MIN_KEY = "puff_min_fdhm_ms"
SPARK_MAX_KEY = "spark_max_fdhm_ms"


def kind_by_duration(fields: dict, puff_min_fdhm_ms: float | None,
                     spark_max_fdhm_ms: float | None) -> None:
    """Apply the rules above to one event's ``fields`` (in place: ``kind``, ``flags``)."""
    fdhm = fields.get("fdhm_ms", math.nan)
    if fdhm is None or not math.isfinite(fdhm):
        return
    kind = fields["kind"]
    if kind == "spark" and puff_min_fdhm_ms is not None and fdhm >= puff_min_fdhm_ms:
        fields["kind"] = "puff"
    elif kind == "puff" and spark_max_fdhm_ms is not None and fdhm < spark_max_fdhm_ms:
        fields["kind"] = "spark"
    else:
        return
    flags = [f for f in str(fields.get("flags", "")).split(";") if f]
    fields["flags"] = ";".join([*flags, KIND_FLAG])
