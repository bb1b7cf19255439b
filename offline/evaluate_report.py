"""Markdown tables, ``report.md``, ``metrics.json`` and plots of an evaluation
(:class:`offline.evaluate.EvaluationResult`): what ``castream evaluate`` prints and writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path

import numpy as np

from offline import characterization_metrics, metrics
from offline.evaluate import LIMIT_BINS, EvaluationResult

log = logging.getLogger(__name__)


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
              "| parameter | median relative error | bias (median signed error) | n | "
              "where the true value is resolvable: error | bias | n |",
              "|---|---|---|---|---|---|---|"]
    for name, err in result.characterization.items():
        kept = result.characterization_resolvable.get(name)
        tail = (f" {_pct(kept['median_rel_error'])} | {_signed_pct(kept['median_bias'])} | "
                f"{kept['n']} |" if kept else " – | – | – |")
        lines.append(f"| {name} | {_pct(err['median_rel_error'])} | "
                     f"{_signed_pct(err.get('median_bias', float('nan')))} | {err['n']} |" + tail)
    lines += ["", "(Resolvable: at least 2 samples, pixels for the FWHM, in the annotation; "
              "below that the honest value is none, and a value the engine reports there "
              "counts in the first columns only.)"]
    lines += _resolution_lines(result) + _significance_lines(result)
    lines += _subtype_lines(result) + _limit_lines(result) + _false_event_lines(result)
    lines += _recording_lines(result)
    return "\n".join(lines) + "\n"


def _signed_pct(value: float) -> str:
    return ("+" if value > 0 else "") + _pct(value)


def _limit_lines(result: EvaluationResult) -> list[str]:
    if not result.by_limit:
        return []
    lines = ["", "### Spark recall by peak ΔF/F0 over the recording's detection limit "
             "(the quality report's `detection_limit_dff0`)", "",
             "| annotated peak ΔF/F0 / limit | n | found as sparks | by any event |",
             "|---|---|---|---|"]
    order = [f"{low:g}-{high:g}" for low, high in pairwise(LIMIT_BINS)]
    for label in sorted(result.by_limit, key=lambda b: order.index(b) if b in order else 99):
        spark, anyone, n = result.by_limit[label]
        lines.append(f"| {label} | {n} | {spark} ({_pct(spark / n)}) | {anyone} "
                     f"({_pct(anyone / n)}) |")
    return lines


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
             "value reported there is a guess (counted in the first error columns above, not "
             "in the resolvable ones); one left empty where the truth is resolvable is in no "
             "error column.", "",
             "| parameter | reported / true under resolution | empty / true resolvable |",
             "|---|---|---|"]
    for name, (reported, below, emptied, above) in result.resolution.items():
        lines.append(f"| {name} | {reported} / {below} | {emptied} / {above} |")
    return lines


def _significance_lines(result: EvaluationResult) -> list[str]:
    if not result.by_significance:
        return []
    names = list(characterization_metrics.CHARACTERIZATION_PARAMS)
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
             "Matched once: each predicted event counts for one annotated event at most, so "
             "two sparks merged into one event count as one found.", "",
             "| subtype | found | n | recall | found, matched once | recall, matched once |",
             "|---|---|---|---|---|---|"]
    for subtype, row in result.subtype_recall.items():
        lines.append(f"| {subtype} | {row['found']} | {row['total']} | {_pct(row['recall'])} "
                     f"| {row['found_once']} | {_pct(row['recall_once'])} |")
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

    names = characterization_metrics.CHARACTERIZATION_PARAMS
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
