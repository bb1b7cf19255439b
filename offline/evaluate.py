"""Evaluation of a model (or the classical detector) through the streaming engine.

Every recording goes through :func:`engine.pipeline.analyze_array` — the same code path as
``castream analyze`` and ``serve`` — and its events/labels are scored against the ground truth
with :mod:`offline.metrics`: pooled pixel IoU, Dotti Tables 2 and 3, and the characterization
error of matched sparks. :mod:`offline.evaluate_report` formats the result and writes
the Markdown report and PNG plots.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquisition.labels import IGNORE, PUFF, SPARK
from offline import metrics
from offline.characterization_metrics import (
    characterization_errors,
    characterization_pairs,
    errors_by_significance,
    resolution_counts,
    resolvable_errors,
    summarize_errors,
)
from offline.datasets import LabeledRecording

if TYPE_CHECKING:
    from engine.models.postprocess_file import PostprocessParams

log = logging.getLogger(__name__)

#: how the engine gets each recording's offset: its true one, or estimated as by a user without it
BLANKS = ("known", "estimated")


@dataclass
class EvaluationResult:
    """Pooled metrics over a set of recordings and the matched (true, predicted) sparks."""

    tables: dict
    scores: dict
    pixel_iou: dict[str, float]
    characterization: dict[str, dict[str, float]]
    spark_pairs: list[tuple[dict, dict]] = field(default_factory=list)
    n_recordings: int = 0
    #: ``{subtype: {found, total, recall}}`` when the annotated events carry a ``subtype``
    subtype_recall: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``{n_recordings, seconds, false_events, per_s}`` over the recordings without events
    false_events: dict[str, float] = field(default_factory=dict)
    #: one row per recording (name, calibration, per-class recall / precision / F1): a pooled
    #: score can hide one recording that fails (docs/RESULTS.md: a very dim development line-scan)
    per_recording: list[dict[str, Any]] = field(default_factory=list)
    #: recall / precision / F1 per class with each event matched at most once
    #: (:func:`offline.metrics.one_to_one_counts`): sees merged pairs and fragments
    one_to_one: dict[str, dict[str, float]] = field(default_factory=dict)
    #: per duration/width ``[reported, unresolvable, emptied, resolvable]`` over the matched
    #: sparks (:func:`offline.characterization_metrics.resolution_counts`)
    resolution: dict[str, list[int]] = field(default_factory=dict)
    #: per class, the 95 % interval of the F1 with the recordings drawn again with replacement
    #: (:func:`offline.metrics.f1_intervals`): what another set of this many recordings could give
    f1_interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the characterization errors per band of the reported significance
    #: (:func:`offline.characterization_metrics.errors_by_significance`)
    by_significance: list[dict] = field(default_factory=list)
    #: ``{bin: [found as a spark, found by any event, n]}``: annotated sparks by their peak
    #: ΔF/F0 over their recording's detection limit (:func:`recall_by_limit`)
    by_limit: dict[str, list[int]] = field(default_factory=dict)
    #: :attr:`characterization` over the matched sparks whose *true* value the sampling
    #: resolves (:func:`offline.characterization_metrics.resolvable_errors`)
    characterization_resolvable: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"n_recordings": self.n_recordings, "scores": self.scores, "tables": self.tables,
               "pixel_iou": self.pixel_iou, "characterization": self.characterization}
        if self.subtype_recall:
            out["subtype_recall"] = self.subtype_recall
        if self.false_events:
            out["false_events"] = self.false_events
        if self.per_recording:
            out["per_recording"] = self.per_recording
        if self.one_to_one:
            out["one_to_one"] = self.one_to_one
        if self.resolution:
            out["resolution"] = self.resolution
        if self.by_limit:
            out["spark_recall_by_detection_limit"] = self.by_limit
        if self.f1_interval:
            out["f1_interval_95"] = {k: list(v) for k, v in self.f1_interval.items()}
        if self.by_significance:
            out["characterization_by_significance"] = self.by_significance
        if self.characterization_resolvable:
            out["characterization_true_resolvable"] = self.characterization_resolvable
        return out


def run_engine(rec: LabeledRecording, model_dir: str | Path | None, mode: str = "accurate",
               detector: str = "network", backend: str = "auto",
               thresholds: Mapping[str, float] | None = None,
               postprocess: PostprocessParams | None = None, blank: str = "known"):
    """Analyze one recording with the streaming engine; returns its ``AnalysisResult``
    (``thresholds`` and ``postprocess`` instead of the model directory's; ``blank``:
    ``"known"``, the recording's true offset, or ``"estimated"``, as ``castream analyze``
    without ``--blank`` does)."""
    from engine.pipeline import analyze_array

    if blank not in BLANKS:
        raise ValueError(f"blank must be one of {BLANKS}, got {blank!r}")
    return analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, model_dir=model_dir,
                         mode=mode, backend=backend,
                         blank=rec.blank if blank == "known" else None, detector=detector,
                         thresholds=dict(thresholds) if thresholds else None,
                         postprocess=postprocess)


def in_castream_vocabulary(rec: LabeledRecording) -> LabeledRecording:
    """``rec`` with its annotations in castream's vocabulary: line-scans have no puffs, an
    annotated line-scan puff is an ember, a spark of subtype ``ember``
    (:mod:`engine.kind_rules`); the class mask follows. Movies are returned as they are."""
    if not rec.stream_kind.is_linescan or not (
            any(ev["kind"] == "puff" for ev in rec.events) or np.any(rec.class_mask == PUFF)):
        return rec
    events = [dict(ev, kind="spark", subtype=ev.get("subtype") or "ember")
              if ev["kind"] == "puff" else ev for ev in rec.events]
    class_mask = np.where(rec.class_mask == PUFF, SPARK, rec.class_mask).astype(
        rec.class_mask.dtype)
    return replace(rec, events=events, class_mask=class_mask)


def true_classes(rec: LabeledRecording) -> dict[int, str]:
    """Class of each annotated instance (from the events list, else from the class mask), in
    castream's vocabulary (:func:`in_castream_vocabulary`)."""
    rec = in_castream_vocabulary(rec)
    if rec.events:
        return {int(ev["event_id"]): str(ev["kind"]) for ev in rec.events}
    return metrics.instance_classes(rec.instance_mask, rec.class_mask)


def score_recording(rec: LabeledRecording, events: Iterable[Any], labels: np.ndarray,
                    quality: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Table 2, pixel counts and spark pairs of one recording given the engine's output (and
    its quality report, for the per-recording row)."""
    rec = in_castream_vocabulary(rec)
    pred_events = {int(ev.event_id): ev.to_dict() for ev in events}
    pred_classes = {i: ev["kind"] for i, ev in pred_events.items()}
    ignore = rec.class_mask == IGNORE
    matching = metrics.match_instances(rec.instance_mask, true_classes(rec), labels, pred_classes,
                                       ignore_mask=ignore if ignore.any() else None)
    pred_class_mask = metrics.class_mask_from_instances(labels, pred_classes)
    true_events = {int(ev["event_id"]): ev for ev in rec.events}
    out = {"tables": metrics.confusion_tables(matching),
           "pixel_counts": metrics.pixel_counts(rec.class_mask, pred_class_mask),
           "spark_pairs": characterization_pairs(matching, true_events, pred_events),
           "one_to_one": metrics.one_to_one_counts(matching)}
    out["resolution"] = resolution_counts(out["spark_pairs"], rec.dt_ms, rec.pixel_um)
    out["resolvable_signed"] = resolvable_errors(out["spark_pairs"], rec.dt_ms, rec.pixel_um)
    subtypes = {i: str(ev["subtype"]) for i, ev in true_events.items() if ev.get("subtype")}
    if subtypes:
        out["subtypes"] = metrics.recall_by_subtype(matching, subtypes)
    seconds = rec.data.shape[0] * rec.dt_ms / 1000.0
    if not rec.events and not rec.instance_mask.any():
        out["empty"] = (len(matching.pred_classes), seconds)
    out["row"] = _recording_row(rec, out["tables"], len(matching.pred_classes), seconds)
    for key in ("resting_snr", "detection_limit_dff0"):
        out["row"][key] = float((quality or {}).get(key, float("nan")))
    limit = out["row"]["detection_limit_dff0"]
    if math.isfinite(limit) and limit > 0:
        out["by_limit"] = recall_by_limit(matching, true_events, limit)
    return out


#: bins of an annotated spark's peak ΔF/F0 over its recording's detection limit
#: (:mod:`engine.detection_limit`)
LIMIT_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, math.inf)


def limit_bin(ratio: float) -> str:
    """The :data:`LIMIT_BINS` label (``"0.5-1"``, ``"5-inf"``) of a peak ΔF/F0 / limit."""
    for low, high in pairwise(LIMIT_BINS):
        if low <= ratio < high:
            return f"{low:g}-{high:g}"
    return "nan"


def recall_by_limit(matching: metrics.Matching, true_events: Mapping[int, Mapping[str, Any]],
                    limit: float) -> dict[str, list[int]]:
    """``{bin: [found as a spark, found by any event, n]}`` over the annotated sparks, binned by
    their own peak ΔF/F0 over the recording's detection ``limit``."""
    as_spark = {t for t, p in matching.pairs if matching.pred_classes.get(p) == "spark"}
    matched = {t for t, _ in matching.pairs}
    out: dict[str, list[int]] = {}
    for tid, cls in matching.true_classes.items():
        event = true_events.get(tid)
        if cls != "spark" or event is None:
            continue
        counts = out.setdefault(limit_bin(float(event["amplitude_dff0"]) / limit), [0, 0, 0])
        counts[0] += tid in as_spark
        counts[1] += tid in matched
        counts[2] += 1
    return out


def _recording_row(rec: LabeledRecording, tables: dict, n_predicted: int,
                   seconds: float) -> dict[str, Any]:
    """One recording's line of the per-recording table."""
    scores = metrics.detection_scores(tables)
    row: dict[str, Any] = {"name": rec.name, "pixel_um": rec.pixel_um, "dt_ms": rec.dt_ms,
                           "seconds": seconds, "n_predicted": n_predicted}
    for cls in metrics.EVENT_CLASSES:
        row[cls] = {"n": tables["annotated"][cls]["total"], **{
            k: scores[cls][k] for k in ("recall", "precision", "f1")}}
    return row


def pool_results(per_recording: list[dict[str, Any]]) -> EvaluationResult:
    """Pool the per-recording scores into one :class:`EvaluationResult`."""
    if not per_recording:
        raise ValueError("no recordings to evaluate")
    tables = per_recording[0]["tables"]
    counts = {k: list(v) for k, v in per_recording[0]["pixel_counts"].items()}
    pairs = list(per_recording[0]["spark_pairs"])
    for res in per_recording[1:]:
        tables = metrics.add_tables(tables, res["tables"])
        for k, (i, u) in res["pixel_counts"].items():
            counts[k][0] += i
            counts[k][1] += u
        pairs += res["spark_pairs"]
    return EvaluationResult(tables=tables, scores=metrics.detection_scores(tables),
                            pixel_iou=metrics.iou_from_counts({k: tuple(v) for k, v in counts.items()}),
                            characterization=characterization_errors(pairs),
                            spark_pairs=pairs, n_recordings=len(per_recording),
                            subtype_recall=_pool_subtypes(per_recording),
                            false_events=_pool_false_events(per_recording),
                            per_recording=[res["row"] for res in per_recording if "row" in res],
                            one_to_one=_pool_one_to_one(per_recording),
                            resolution=_summed_counts(per_recording, "resolution"),
                            f1_interval=metrics.f1_intervals([r["tables"] for r in per_recording]),
                            by_significance=errors_by_significance(pairs),
                            by_limit=_summed_counts(per_recording, "by_limit"),
                            characterization_resolvable=_pool_resolvable(per_recording))


def _pool_resolvable(per_recording: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The recordings' ``resolvable_signed`` errors pooled and summarized."""
    pooled: dict[str, list[float]] = {}
    for res in per_recording:
        for name, signed in res.get("resolvable_signed", {}).items():
            pooled.setdefault(name, []).extend(signed)
    return summarize_errors(pooled)


def _summed_counts(per_recording: list[dict[str, Any]], key: str) -> dict[str, list[int]]:
    """``{name: [counts...]}`` of every recording's ``key``, summed element-wise."""
    totals: dict[str, list[int]] = {}
    for res in per_recording:
        for name, counts in res.get(key, {}).items():
            pooled = totals.setdefault(name, [0] * len(counts))
            for i, n in enumerate(counts):
                pooled[i] += n
    return totals


def _pool_one_to_one(per_recording: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    totals = _summed_counts(per_recording, "one_to_one")
    return metrics.one_to_one_scores(totals) if totals else {}


def _pool_subtypes(per_recording: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Found / total / recall per subtype, and found / recall with each predicted event
    matched at most once, summed over the recordings."""
    found = _summed_counts(per_recording, "subtypes")
    return {k: {"found": f, "total": t, "recall": f / t if t else float("nan"),
                "found_once": once, "recall_once": once / t if t else float("nan")}
            for k, (f, t, once) in sorted(found.items())}


def _pool_false_events(per_recording: list[dict[str, Any]]) -> dict[str, float]:
    """Predicted events per second on the recordings that have no annotated event."""
    empty = [res["empty"] for res in per_recording if "empty" in res]
    if not empty:
        return {}
    n_false, seconds = sum(n for n, _ in empty), sum(s for _, s in empty)
    return {"n_recordings": len(empty), "seconds": seconds, "false_events": n_false,
            "per_s": n_false / seconds if seconds else float("nan")}


def evaluate(recordings: Iterable[LabeledRecording], model_dir: str | Path | None,
             mode: str = "accurate", detector: str = "network", backend: str = "auto",
             thresholds: Mapping[str, float] | None = None, progress: bool = True,
             postprocess: PostprocessParams | None = None, blank: str = "known"
             ) -> EvaluationResult:
    """Run the engine on every recording and pool the metrics (``thresholds``,
    ``postprocess``, ``blank``: as :func:`run_engine`)."""
    from tqdm import tqdm

    if not isinstance(recordings, Sequence):
        recordings = list(recordings)  # a Sequence (LazyRecordings) is read one at a time
    per_recording = []
    for rec in tqdm(recordings, desc=f"evaluate ({detector})", disable=not progress or None):
        result = run_engine(rec, model_dir, mode, detector, backend, thresholds, postprocess,
                            blank)
        per_recording.append(score_recording(rec, result.events, np.asarray(result.labels),
                                             result.quality))
        del result
        gc.collect()  # the engine's objects hold large arrays in reference cycles
    return pool_results(per_recording)
