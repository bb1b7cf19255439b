"""Threshold tuning on validation recordings, through the streaming engine.

A grid over the pipeline's thresholds (by default the foreground probability threshold that
replaces Dotti's whole-movie Otsu threshold) is evaluated with :func:`offline.evaluate.evaluate`
on validation recordings — never on test or held-out real data — and the combination with the
best mean F1 is written to the model's ``thresholds.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.stream_kind import StreamKind
from offline.datasets import LabeledRecording
from offline.evaluate import evaluate

log = logging.getLogger(__name__)

DEFAULT_GRID: dict[str, list[float]] = {"foreground": [0.3, 0.4, 0.5, 0.6, 0.7]}


def grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """All combinations of the grid's values, as threshold dicts."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def objective(scores: Mapping[str, Any], classes: Sequence[str] = ("spark", "wave", "puff")) -> float:
    """Mean F1 over ``classes`` that are annotated in the validation set (a class with no
    annotated event would only add a 0 or NaN)."""
    f1s = [scores[c]["f1"] for c in classes if scores[c]["n_true"] > 0]
    return float(np.mean(f1s)) if f1s else float("nan")


def tune_thresholds(recordings: Sequence[LabeledRecording], model_dir: str | Path,
                    mode: str = "accurate", grid: Mapping[str, Sequence[float]] | None = None,
                    base: Mapping[str, float] | None = None, backend: str = "auto",
                    classes: Sequence[str] = ("spark", "wave", "puff")) -> dict[str, Any]:
    """Best thresholds by :func:`objective` (mean F1); returns the whole search."""
    trials = []
    for point in grid_points(grid or DEFAULT_GRID):
        thresholds = {**(base or {}), **point}
        result = evaluate(recordings, model_dir, mode=mode, backend=backend,
                          thresholds=thresholds, progress=False)
        f1 = objective(result.scores, classes)
        trials.append({"thresholds": thresholds, "mean_f1": f1,
                       "f1": {c: result.scores[c]["f1"] for c in ("spark", "wave", "puff")}})
        log.info("thresholds %s -> mean F1 %.3f", thresholds, f1)
    best = max(trials, key=lambda t: -np.inf if np.isnan(t["mean_f1"]) else t["mean_f1"])
    return {"best": best["thresholds"], "best_mean_f1": best["mean_f1"], "trials": trials,
            "n_recordings": len(recordings), "objective_classes": list(classes)}


def write_thresholds(model_dir: str | Path, search: Mapping[str, Any],
                     search_file: str = "threshold_search.json") -> Path:
    """Merge the best thresholds into ``thresholds.json`` and store the search beside it."""
    path = Path(model_dir) / "thresholds.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(search["best"])
    path.write_text(json.dumps(current, indent=2) + "\n")
    (Path(model_dir) / search_file).write_text(
        json.dumps(search, indent=2, default=float) + "\n")
    return path


#: validation seeds of the development set (its test recordings use seeds from 0)
DEV_VAL_SEED = 10_000_000


def validation_data(stream_kind: StreamKind, n: int, n_empty: int, seed: int = 0,
                    sim_params: Mapping[str, Any] | None = None, n_sim: int | None = None):
    """``({"sim": [...], "dev": [...]}, empty)``: validation recordings of both generators (the
    simulator's validation split from ``seed`` with ``sim_params``, ``n_sim`` of them (default
    ``n``), the development set from :data:`DEV_VAL_SEED`) and ``n_empty`` empty ones of each
    (development-set backgrounds; simulator at 3-30 photons per pixel at rest); never test
    data."""
    from offline.datasets import SimulatedSource
    from offline.devsim import DevSource

    n_sim = n if n_sim is None else n_sim
    kind = stream_kind.model_kind
    sets = {"sim": SimulatedSource(kind=kind, split="val", seed=seed,
                                   params=dict(sim_params or {})).take(n_sim),
            "dev": DevSource(kind=kind, seed=DEV_VAL_SEED).take(n)}
    no_events = {"spark_rate_per_100um_s": 0.0, "puff_rate_per_100um_s": 0.0,
                 "wave_rate_per_cell_s": 0.0}
    empty = (DevSource(kind=kind, seed=DEV_VAL_SEED, params={"empty": True}).take(n_empty)
             + SimulatedSource(kind=kind, split="val", seed=seed + 1000, params=no_events,
                               randomize={"resting_photons": [3.0, 30.0]}).take(n_empty))
    return sets, empty


#: significance thresholds tried by :func:`tune_min_significance` (noise SDs)
SIGNIFICANCE_GRID = [0.0, 3.0, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 8.0, 10.0]


def tune_min_significance(recordings: Sequence[LabeledRecording], model_dir: str | Path | None,
                          mode: str = "accurate", grid: Sequence[float] = SIGNIFICANCE_GRID,
                          detector: str = "network", backend: str = "auto",
                          classes: Sequence[str] = ("spark", "wave", "puff"),
                          thresholds: Mapping[str, float] | None = None,
                          empty: Sequence[LabeledRecording] = (),
                          max_false_per_s: float = 0.5) -> dict[str, Any]:
    """Best ``min_significance`` by :func:`objective`, on validation recordings.

    The engine runs once per recording with the filter off; each threshold then drops the
    events (and their labels) below it, exactly what the engine's filter would have done.
    ``empty`` recordings (no events) give the false events per second of each threshold; only
    thresholds at or under ``max_false_per_s`` compete (the lowest rate wins if none does).
    """
    from offline.evaluate import pool_results, run_engine, score_recording

    off = {**(thresholds or {}), "min_significance": -1e9}
    runs = [(rec, run_engine(rec, model_dir, mode, detector, backend, off)) for rec in recordings]
    empty_runs = [(rec, run_engine(rec, model_dir, mode, detector, backend, off)) for rec in empty]
    empty_s = sum(rec.data.shape[0] * rec.dt_ms for rec in empty) / 1e3
    trials = []
    for threshold in grid:
        per_recording = [score_recording(rec, *_filtered(result, threshold)) for rec, result in runs]
        scores = pool_results(per_recording).scores
        n_false = sum(len(_filtered(result, threshold)[0]) for _, result in empty_runs)
        false_per_s = n_false / empty_s if empty_s else float("nan")
        f1 = objective(scores, classes)
        trials.append({"thresholds": {"min_significance": float(threshold)}, "mean_f1": f1,
                       "false_events_per_s": false_per_s,
                       "scores": {c: scores[c] for c in ("spark", "wave", "puff")}})
        log.info("min_significance %.1f -> mean F1 %.3f, %.2f false events/s", threshold, f1,
                 false_per_s)
    allowed = [t for t in trials if not t["false_events_per_s"] > max_false_per_s] or \
        [min(trials, key=lambda t: t["false_events_per_s"])]
    best = _conservative_best(allowed)
    return {"best": best["thresholds"], "best_mean_f1": best["mean_f1"], "trials": trials,
            "n_recordings": len(recordings), "n_empty": len(empty),
            "max_false_per_s": max_false_per_s, "objective_classes": list(classes)}


#: F1 within this of the best counts as a tie
F1_TIE = 0.001


def _conservative_best(trials: list[dict]) -> dict:
    """Among the trials whose F1 ties with the best (within :data:`F1_TIE`), the fewest false
    events per second, then the highest threshold: the same accuracy on validation data
    with the fewest chances for noise on data it has not seen."""
    f1s = [t["mean_f1"] for t in trials if not np.isnan(t["mean_f1"])]
    if not f1s:
        return trials[0]
    plateau = [t for t in trials if t["mean_f1"] >= max(f1s) - F1_TIE]
    return min(plateau, key=lambda t: (np.nan_to_num(t["false_events_per_s"]),
                                       -t["thresholds"]["min_significance"]))


def _filtered(result, threshold: float) -> tuple[list, np.ndarray]:
    """Events at or above ``threshold`` and the labels without the others."""
    kept = [e for e in result.events if not e.significance < threshold]
    labels = np.asarray(result.labels).copy()
    dropped = [e.event_id for e in result.events if e.significance < threshold]
    if dropped:
        labels[np.isin(labels, dropped)] = 0
    return kept, labels
