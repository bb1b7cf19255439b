"""Characterization errors of matched events: the median relative error and bias of each
parameter against the annotation, by significance band, and the values left empty for
resolution (:mod:`engine.honesty`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engine.honesty import MIN_SAMPLES
from offline.metrics import Matching

CHARACTERIZATION_PARAMS = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")


def characterization_pairs(
    matching: Matching,
    true_events: Mapping[int, Mapping[str, float]],
    pred_events: Mapping[int, Mapping[str, float]],
    kind: str = "spark",
) -> list[tuple[dict, dict]]:
    """(true, predicted) event dicts for annotated events of ``kind`` matched by the same kind.

    When several predicted events match one annotated event, the largest overlap wins.
    """
    best: dict[int, tuple[int, int]] = {}
    for (tid, pid), (inter, _) in matching.pairs.items():
        if matching.true_classes.get(tid) != kind or matching.pred_classes.get(pid) != kind:
            continue
        if tid not in best or inter > best[tid][1]:
            best[tid] = (pid, inter)
    return [(dict(true_events[t]), dict(pred_events[p])) for t, (p, _) in best.items()
            if t in true_events and p in pred_events]


def characterization_errors(
    pairs: Iterable[tuple[Mapping[str, float], Mapping[str, float]]],
    params: Iterable[str] = CHARACTERIZATION_PARAMS,
) -> dict[str, dict[str, float]]:
    """Median relative error |pred − true| / |true| per parameter, its bias (median signed
    relative error (pred − true) / |true|), and the count used."""
    pairs = list(pairs)
    return summarize_errors({name: relative_errors(pairs, name) for name in params})


def summarize_errors(signed: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """``{name: {median_rel_error, median_bias, n}}`` of signed relative errors per parameter."""
    return {name: {"median_rel_error": float(np.median(np.abs(v))) if len(v) else float("nan"),
                   "median_bias": float(np.median(v)) if len(v) else float("nan"),
                   "n": len(v)}
            for name, v in signed.items()}


def resolvable_errors(pairs: Iterable[tuple[Mapping[str, float], Mapping[str, float]]],
                      dt_ms: float, pixel_um: float) -> dict[str, list[float]]:
    """Signed relative errors per parameter over the pairs of one recording whose *true* value
    its sampling resolves (at least ``engine.honesty.MIN_SAMPLES`` samples, pixels for the
    FWHM; every pair for the amplitude). Pooled over recordings and summarized
    (:func:`summarize_errors`), they show how much of a median error comes from values the
    annotation itself places under the resolution, where the honest answer is no value: the
    engine reports one where it measures the parameter at or above the resolution."""
    pairs = list(pairs)
    out = {}
    for name in CHARACTERIZATION_PARAMS:
        kept = pairs if name == "amplitude_dff0" else [
            (t, p) for t, p in pairs
            if _finite(t.get(name)) and _resolvable(float(t[name]), name, dt_ms, pixel_um)]
        out[name] = relative_errors(kept, name)
    return out


#: lower edges of the significance bands of :func:`errors_by_significance` (noise SDs; the
#: shipped line-scan and movie models drop events under 6.5 and 7)
SIGNIFICANCE_BANDS = (0.0, 10.0, 15.0, 20.0, 30.0, 50.0)


def errors_by_significance(
    pairs: Iterable[tuple[Mapping[str, float], Mapping[str, float]]],
    bands: Sequence[float] = SIGNIFICANCE_BANDS,
) -> list[dict]:
    """:func:`characterization_errors` of the matched pairs in each band of the *reported*
    event's significance (``[lo, next lo)``, the last open): what a user can expect of an
    event's parameters given the one number they have about it (``hi`` None: the open last
    band). Pairs without a finite significance are left out; empty bands too."""
    pairs = [(t, p) for t, p in pairs if _finite(p.get("significance"))]
    out = []
    for lo, hi in zip(bands, (*bands[1:], math.inf), strict=True):
        inside = [(t, p) for t, p in pairs if lo <= float(p["significance"]) < hi]
        if inside:
            out.append({"lo": lo, "hi": None if math.isinf(hi) else hi, "n": len(inside),
                        "errors": characterization_errors(inside)})
    return out


def resolution_counts(pairs: Iterable[tuple[Mapping[str, float], Mapping[str, float]]],
                      dt_ms: float, pixel_um: float) -> dict[str, list[int]]:
    """Per parameter ``[reported, unresolvable, emptied, resolvable]``: of the matched pairs
    whose *true* value is under ``engine.honesty.MIN_SAMPLES`` samples (pixels for the FWHM),
    how many got a value anyway; of those whose true value is resolvable, how many came out
    empty. The median errors only see pairs where both values exist, so a value reported
    below the sampling's resolution (a guess) or withheld where it could be measured shows
    only here."""
    pairs = list(pairs)
    out = {}
    for name in CHARACTERIZATION_PARAMS:
        if name == "amplitude_dff0":
            continue
        counts = [0, 0, 0, 0]
        for t, p in pairs:
            if not _finite(t.get(name)):
                continue
            reported = _finite(p.get(name))
            if not _resolvable(float(t[name]), name, dt_ms, pixel_um):
                counts[0] += reported
                counts[1] += 1
            else:
                counts[2] += not reported
                counts[3] += 1
        out[name] = counts
    return out


def relative_errors(pairs: Iterable[tuple[Mapping[str, float], Mapping[str, float]]],
                    name: str) -> list[float]:
    """Signed relative errors (pred − true) / |true| of parameter ``name`` over the pairs where
    both values are finite and the truth is not 0."""
    return [(float(p[name]) - float(t[name])) / abs(float(t[name]))
            for t, p in pairs if _finite(t.get(name)) and _finite(p.get(name))
            and float(t[name]) != 0]


def _resolvable(value: float, name: str, dt_ms: float, pixel_um: float) -> bool:
    """Whether the sampling resolves a duration or width ``value``: at least
    ``engine.honesty.MIN_SAMPLES`` samples (pixels for the FWHM)."""
    return value >= MIN_SAMPLES * (pixel_um if name == "fwhm_um" else dt_ms)


def _finite(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False
