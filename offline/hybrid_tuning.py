"""Choosing the hybrid detector's fusion parameters (:mod:`engine.hybrid`) on validation data.

Validation only, from both generators: the simulator's validation split and the development
set's validation seeds (:data:`~offline.thresholds.DEV_VAL_SEED`), plus empty recordings of both for the false-event
rate; never the test seeds, never ``shared/data``. Each candidate fusion runs once per recording
with the significance filter off; every ``min_significance`` of the grid then drops the events
below it (exactly what the engine's filter does), so one run scores the whole grid.

Objective: the mean over the two generators of the mean F1 of the classes annotated in each
(a model must do well on both, not on the larger one); among the candidates at or under
``max_false_per_s`` on the empty recordings, the best objective wins, a tie (within
:data:`~offline.thresholds.F1_TIE`) going to fewer false events, then the higher threshold.
The network's inference is computed once and reused by every candidate (:class:`MemoBackend`),
so the search costs one network pass plus one classical pass per candidate.

Every candidate is post-processed as the model directory's ``postprocess.json`` says for the
hybrid (its ``split_dip_sd``): the search scores what will run. :func:`write_best` writes the
fusion and the significance threshold to ``hybrid.json`` and the search beside it; the
post-processing parameters are not this search's, so ``postprocess.json`` is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.hybrid import HybridParams
from engine.models.model_dir import ModelDir
from engine.models.postprocess_file import PostprocessParams
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array
from offline.evaluate import pool_results, score_recording
from offline.thresholds import (
    F1_TIE,
    SIGNIFICANCE_GRID,
    _filtered,
    objective,
    validation_data,
)

log = logging.getLogger(__name__)

#: criteria of the classical detector tried in the union (its own defaults were tuned on the
#: simulator only)
K_DETECT = (6.0, 6.5, 7.0, 7.5)
K_GROW = (3.5, 4.0, 4.5)


def candidates(k_detect: Sequence[float] = K_DETECT,
               k_grow: Sequence[float] = K_GROW) -> list[HybridParams]:
    """Fusion candidates tried by :func:`tune_hybrid` (the significance grid runs for each): the
    network alone with the classical detector's classes (waves; waves and puffs), the union with
    the classical defaults (the same two), and the union over a grid of the classical
    detector's criteria (none when either grid is empty)."""
    return [
        HybridParams(classical_weight=0.0, classes_from_classical=("wave",)),
        HybridParams(classical_weight=0.0, classes_from_classical=("wave", "puff")),
        HybridParams(classical_weight=1.0, classes_from_classical=("wave",)),
        HybridParams(classical_weight=1.0, classes_from_classical=("wave", "puff")),
        *(HybridParams(classical_weight=1.0, classes_from_classical=("wave",),
                       classical={"k_detect": kd, "k_grow": kg})
          for kd in k_detect for kg in k_grow if kg <= kd),
    ]


class MemoBackend:
    """A backend that remembers its outputs by input bytes (same windows → same probabilities,
    computed once), kept as float16."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.name, self.device = backend.name, backend.device
        self.reason = getattr(backend, "reason", "")
        self._memo: dict[bytes, np.ndarray] = {}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch)
        key = hashlib.sha1(batch.tobytes()).digest() + str(batch.shape).encode()
        if key not in self._memo:
            self._memo[key] = np.asarray(self.backend.predict(batch)).astype(np.float16)
        return self._memo[key].astype(np.float32)

    def close(self) -> None:
        self.backend.close()


def tune_hybrid(model_dir: str | Path, n: int = 12, n_empty: int = 6,
                fusions: Sequence[HybridParams] | None = None,
                grid: Sequence[float] = SIGNIFICANCE_GRID, max_false_per_s: float = 0.5,
                mode: str = "accurate", backend: str = "auto") -> dict[str, Any]:
    """Search the fusion candidates × significance grid (module docstring); returns the search
    with ``best`` (a :class:`HybridParams` as a dict)."""
    from tqdm import tqdm

    from engine.backends import make_backend

    model = ModelDir.load(model_dir)
    kind = model.config.stream_kind
    memo = MemoBackend(make_backend(model, backend))
    sets, empty = validation_data(kind, n, n_empty)
    empty_s = sum(rec.data.shape[0] * rec.dt_ms for rec in empty) / 1e3
    trials = []
    for params in fusions if fusions is not None else candidates():
        factory = DetectorFactory(EngineConfig(model=Path(model_dir), mode=mode, detector="hybrid",
                                               thresholds={"min_significance": -1e9},
                                               hybrid=params))
        factory.preload(kind, model, memo)
        runs = {name: [(rec, _run(rec, factory)) for rec in tqdm(recs, desc=name, leave=False)]
                for name, recs in sets.items()}
        empty_runs = [_run(rec, factory) for rec in tqdm(empty, desc="empty", leave=False)]
        for threshold in grid:
            scores = {name: pool_results([score_recording(rec, *_filtered(res, threshold))
                                          for rec, res in pairs]).scores
                      for name, pairs in runs.items()}
            n_false = sum(len(_filtered(res, threshold)[0]) for res in empty_runs)
            per_set = {name: objective(s) for name, s in scores.items()}
            trial = {"params": asdict(replace(params, min_significance=float(threshold))),
                     "objective": float(np.mean(list(per_set.values()))),
                     "objective_per_set": per_set,
                     "false_events_per_s": n_false / empty_s if empty_s else float("nan"),
                     "f1": {name: {c: s[c]["f1"] for c in ("spark", "wave", "puff")
                                   if s[c]["n_true"] > 0} for name, s in scores.items()}}
            trials.append(trial)
            log.info("%s min_significance %.1f -> %.3f (%s), %.2f false events/s",
                     _short(params), threshold, trial["objective"],
                     ", ".join(f"{k} {v:.3f}" for k, v in per_set.items()),
                     trial["false_events_per_s"])
    best = _best(trials, max_false_per_s)
    return {"best": best["params"], "best_objective": best["objective"], "trials": trials,
            "n_recordings": {name: len(recs) for name, recs in sets.items()},
            "n_empty": len(empty), "max_false_per_s": max_false_per_s}


def _run(rec, factory: DetectorFactory):
    return analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, blank=rec.blank,
                         factory=factory)


def _short(params: HybridParams) -> str:
    return (f"w={params.classical_weight:g} classes={','.join(params.classes_from_classical)}"
            f" classical={params.classical or 'default'}")


def _best(trials: list[dict], max_false_per_s: float) -> dict:
    allowed = [t for t in trials if not t["false_events_per_s"] > max_false_per_s] or \
        [min(trials, key=lambda t: t["false_events_per_s"])]
    top = max(t["objective"] for t in allowed)
    plateau = [t for t in allowed if t["objective"] >= top - F1_TIE]
    return min(plateau, key=lambda t: (t["false_events_per_s"],
                                       -t["params"]["min_significance"]))


def best_params(search: dict[str, Any], command: str, model_dir: str | Path) -> HybridParams:
    """The best fusion of ``search`` with its provenance: ``command``, the objective, the data
    and the spark splitting it was post-processed with (``postprocess.json``)."""
    best = dict(search["best"])
    split = PostprocessParams.load(model_dir).tracker_for("hybrid").split_dip_sd
    best["provenance"] = (f"{command}: validation objective {search['best_objective']:.3f} "
                          f"(mean over simulator/development validation of the mean class F1), "
                          f"{search['n_recordings']} recordings, {search['n_empty']} empty; "
                          f"post-processed with split_dip_sd {split} (postprocess.json)")
    best["classes_from_classical"] = tuple(best["classes_from_classical"])
    best["notes"] = tuple(best.get("notes", ()))
    return HybridParams(**best)


def write_best(model_dir: str | Path, params: HybridParams, search: dict[str, Any]) -> Path:
    """``hybrid.json`` (``params``) and ``hybrid_search.json`` (the whole ``search``)."""
    path = params.save(model_dir)
    (Path(model_dir) / "hybrid_search.json").write_text(
        json.dumps(search, indent=2, default=float) + "\n")
    return path
