"""Evaluation of a model (or the classical detector) through the streaming engine.

Every recording goes through :func:`engine.pipeline.analyze_array` — the same code path as
``castream analyze`` and ``serve`` — and its events/labels are scored against the ground truth
with :mod:`offline.metrics`: pooled pixel IoU, Dotti Tables 2 and 3, and the characterization
error of matched sparks. :func:`write_report` writes a Markdown report and PNG plots.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquisition.labels import IGNORE, PUFF, SPARK
from offline import metrics
from offline.datasets import LabeledRecording

if TYPE_CHECKING:
    from engine.models.postprocess_file import PostprocessParams

log = logging.getLogger(__name__)


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
    #: sparks (:func:`offline.metrics.resolution_counts`)
    resolution: dict[str, list[int]] = field(default_factory=dict)
    #: per class, the 95 % interval of the F1 with the recordings drawn again with replacement
    #: (:func:`offline.metrics.f1_intervals`): what another set of this many recordings could give
    f1_interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the characterization errors per band of the reported significance
    #: (:func:`offline.metrics.errors_by_significance`)
    by_significance: list[dict] = field(default_factory=list)

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
        if self.f1_interval:
            out["f1_interval_95"] = {k: list(v) for k, v in self.f1_interval.items()}
        if self.by_significance:
            out["characterization_by_significance"] = self.by_significance
        return out


def run_engine(rec: LabeledRecording, model_dir: str | Path | None, mode: str = "accurate",
               detector: str = "network", backend: str = "auto",
               thresholds: Mapping[str, float] | None = None,
               postprocess: PostprocessParams | None = None):
    """Analyze one recording with the streaming engine; returns its ``AnalysisResult``
    (``thresholds`` and ``postprocess`` instead of the model directory's)."""
    from engine.pipeline import analyze_array

    return analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, model_dir=model_dir,
                         mode=mode, backend=backend, blank=rec.blank, detector=detector,
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
           "spark_pairs": metrics.characterization_pairs(matching, true_events, pred_events),
           "one_to_one": metrics.one_to_one_counts(matching)}
    out["resolution"] = metrics.resolution_counts(out["spark_pairs"], rec.dt_ms, rec.pixel_um)
    subtypes = {i: str(ev["subtype"]) for i, ev in true_events.items() if ev.get("subtype")}
    if subtypes:
        out["subtypes"] = metrics.recall_by_subtype(matching, subtypes)
    seconds = rec.data.shape[0] * rec.dt_ms / 1000.0
    if not rec.events and not rec.instance_mask.any():
        out["empty"] = (len(matching.pred_classes), seconds)
    out["row"] = _recording_row(rec, out["tables"], len(matching.pred_classes), seconds)
    for key in ("resting_snr", "detection_limit_dff0"):
        out["row"][key] = float((quality or {}).get(key, float("nan")))
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
                            characterization=metrics.characterization_errors(pairs),
                            spark_pairs=pairs, n_recordings=len(per_recording),
                            subtype_recall=_pool_subtypes(per_recording),
                            false_events=_pool_false_events(per_recording),
                            per_recording=[res["row"] for res in per_recording if "row" in res],
                            one_to_one=_pool_one_to_one(per_recording),
                            resolution=_summed_counts(per_recording, "resolution"),
                            f1_interval=metrics.f1_intervals([r["tables"] for r in per_recording]),
                            by_significance=metrics.errors_by_significance(pairs))


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
    """Found / total / recall per subtype, summed over the recordings."""
    found = _summed_counts(per_recording, "subtypes")
    return {k: {"found": f, "total": t, "recall": f / t if t else float("nan")}
            for k, (f, t) in sorted(found.items())}


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
             postprocess: PostprocessParams | None = None) -> EvaluationResult:
    """Run the engine on every recording and pool the metrics (``thresholds``,
    ``postprocess``: as :func:`run_engine`)."""
    from tqdm import tqdm

    if not isinstance(recordings, Sequence):
        recordings = list(recordings)  # a Sequence (LazyRecordings) is read one at a time
    per_recording = []
    for rec in tqdm(recordings, desc=f"evaluate ({detector})", disable=not progress or None):
        result = run_engine(rec, model_dir, mode, detector, backend, thresholds, postprocess)
        per_recording.append(score_recording(rec, result.events, np.asarray(result.labels),
                                             result.quality))
        del result
        gc.collect()  # the engine's objects hold large arrays in reference cycles
    return pool_results(per_recording)


# --------------------------------------------------------------------------- report


def format_tables(result: EvaluationResult, title: str = "") -> str:
    """Markdown: Table 2 (both directions), Table 3, pixel IoU and characterization errors."""
    lines = [f"## {title}" if title else "", f"Recordings: {result.n_recordings}", ""]
    for side, miss in (("annotated", "undetected"), ("predicted", "unmatched")):
        lines += [f"### Table 2 — {side} → matched classes", "",
                  f"| {side} | n | spark | wave | puff | {miss} |", "|---|---|---|---|---|---|"]
        for cls, row in result.tables[side].items():
            lines.append(f"| {cls} | {row['total']} | {row['spark']} | {row['wave']} | "
                         f"{row['puff']} | {row[miss]} |")
        lines.append("")
    interval = result.f1_interval
    lines += ["### Table 3 — detection", "", "| class | % detected | % correct | F1 |"
              + (" F1 95 % interval (recordings resampled) |" if interval else ""),
              "|---|---|---|---|" + ("---|" if interval else "")]
    for cls in metrics.EVENT_CLASSES:
        s = result.scores[cls]
        lo_hi = interval.get(cls)
        extra = (f" {_num(lo_hi[0])}–{_num(lo_hi[1])} |" if lo_hi else " – |") if interval else ""
        lines.append(f"| {cls} | {_pct(s['recall'])} | {_pct(s['precision'])} | {_num(s['f1'])} |"
                     + extra)
    lines += [f"| **average** | | | {_num(result.scores['average']['f1'])} |"
              + (" |" if interval else ""), ""]
    if result.one_to_one:
        lines += ["Each event matched at most once (a merged pair finds one spark, a fragment "
                  "is a false event):", "", "| class | % detected | % correct | F1 |",
                  "|---|---|---|---|"]
        for cls, s in result.one_to_one.items():
            lines.append(f"| {cls} | {_pct(s['recall'])} | {_pct(s['precision'])} | "
                         f"{_num(s['f1'])} |")
        lines.append("")
    lines += ["### Pixel IoU", "", "| " + " | ".join(result.pixel_iou) + " |",
              "|" + "---|" * len(result.pixel_iou),
              "| " + " | ".join(_num(v) for v in result.pixel_iou.values()) + " |", "",
              "### Spark characterization (matched sparks)", "",
              "| parameter | median relative error | bias (median signed error) | n |",
              "|---|---|---|---|"]
    for name, err in result.characterization.items():
        bias = err.get("median_bias", float("nan"))
        sign = "+" if bias > 0 else ""
        lines.append(f"| {name} | {_pct(err['median_rel_error'])} | {sign}{_pct(bias)} "
                     f"| {err['n']} |")
    lines += _resolution_lines(result) + _significance_lines(result)
    lines += _subtype_lines(result) + _false_event_lines(result) + _recording_lines(result)
    return "\n".join(lines) + "\n"


def _recording_lines(result: EvaluationResult) -> list[str]:
    if len(result.per_recording) < 2:
        return []
    lines = ["", "### Per recording (spark recall / precision; n = annotated sparks)", "",
             "| recording | pixel µm | ms/frame | resting SNR | detection limit ΔF/F0 | sparks n "
             "| recall | precision | predicted |", "|---|---|---|---|---|---|---|---|---|"]
    for row in result.per_recording:
        spark = row["spark"]
        snr = row.get("resting_snr", float("nan"))
        limit = row.get("detection_limit_dff0", float("nan"))
        lines.append(f"| {row['name']} | {row['pixel_um']:.3f} | {row['dt_ms']:.2f} | "
                     f"{'–' if np.isnan(snr) else f'{snr:.1f}'} | "
                     f"{'–' if np.isnan(limit) else f'{limit:.2f}'} | {spark['n']} | "
                     f"{_pct(spark['recall'])} | {_pct(spark['precision'])} | "
                     f"{row['n_predicted']} |")
    return lines


def _resolution_lines(result: EvaluationResult) -> list[str]:
    if not result.resolution:
        return []
    lines = ["", "Against the sampling's resolution (true value under 2 samples or pixels): a "
             "value reported there is a guess the errors above do not see.", "",
             "| parameter | reported / true under resolution | empty / true resolvable |",
             "|---|---|---|"]
    for name, (reported, below, emptied, above) in result.resolution.items():
        lines.append(f"| {name} | {reported} / {below} | {emptied} / {above} |")
    return lines


def _significance_lines(result: EvaluationResult) -> list[str]:
    if not result.by_significance:
        return []
    names = list(metrics.CHARACTERIZATION_PARAMS)
    lines = ["", "By the reported event's significance (noise SDs): median relative error (n)", "",
             "| significance | n | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for band in result.by_significance:
        hi = "" if band["hi"] is None else f"{band['hi']:g}"
        cells = [f"{_pct(band['errors'][k]['median_rel_error'])} ({band['errors'][k]['n']})"
                 for k in names]
        lines.append(f"| {band['lo']:g}–{hi} | {band['n']} | " + " | ".join(cells) + " |")
    return lines


def _subtype_lines(result: EvaluationResult) -> list[str]:
    if not result.subtype_recall:
        return []
    lines = ["", "### Recall by subtype (matched by any predicted event, IoMin ≥ 0.5)", "",
             "| subtype | found | n | recall |", "|---|---|---|---|"]
    for subtype, row in result.subtype_recall.items():
        lines.append(f"| {subtype} | {row['found']} | {row['total']} | {_pct(row['recall'])} |")
    return lines


def _false_event_lines(result: EvaluationResult) -> list[str]:
    fe = result.false_events
    if not fe:
        return []
    return ["", "### Recordings without events", "",
            f"{fe['false_events']} false events in {fe['seconds']:.1f} s over "
            f"{fe['n_recordings']} recordings: **{_num(fe['per_s'])} false events per second**"]


def _pct(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.1f} %"


def _num(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{value:.3f}"


def write_report(results: Mapping[str, EvaluationResult], out_dir: str | Path, title: str) -> Path:
    """``report.md``, ``metrics.json`` and PNG plots for each named result."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}", ""]
    for name, result in results.items():
        parts.append(format_tables(result, name))
        plot_confusion(result, out / f"confusion_{_slug(name)}.png", name)
        if result.spark_pairs:
            plot_parameters(result, out / f"parameters_{_slug(name)}.png", name)
            parts.append(f"![parameters](parameters_{_slug(name)}.png)\n")
        parts.append(f"![confusion](confusion_{_slug(name)}.png)\n")
    (out / "report.md").write_text("\n".join(parts))
    (out / "metrics.json").write_text(json.dumps({k: r.to_dict() for k, r in results.items()},
                                                 indent=2, default=float) + "\n")
    log.info("wrote report to %s", out / "report.md")
    return out / "report.md"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "result"


def plot_confusion(result: EvaluationResult, path: Path, title: str) -> None:
    """Annotated class (rows) vs matched predicted class / undetected (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(metrics.EVENT_CLASSES)
    cols = [*rows, "undetected"]
    mat = np.array([[result.tables["annotated"][r][c] for c in cols] for r in rows], float)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.imshow(mat / np.maximum(mat.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, f"{int(v)}", ha="center", va="center")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("annotated")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_parameters(result: EvaluationResult, path: Path, title: str) -> None:
    """Predicted vs true value of each characterization parameter (matched sparks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = metrics.CHARACTERIZATION_PARAMS
    fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3))
    for ax, name in zip(axes, names, strict=True):
        t = np.array([float(a[name]) for a, _ in result.spark_pairs])
        p = np.array([float(b[name]) for _, b in result.spark_pairs])
        ok = np.isfinite(t) & np.isfinite(p)
        ax.scatter(t[ok], p[ok], s=6, alpha=0.6)
        if ok.any():
            lim = [min(t[ok].min(), p[ok].min()), max(t[ok].max(), p[ok].max())]
            ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel("predicted")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
