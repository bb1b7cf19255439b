"""Plain-text tables for the CLI: events, per-cell summaries, latency.

Numbers are formatted here, computed elsewhere (the analyzer and characterization).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .events import Event

Column = tuple[str, str, Callable[[Any], str]]


def _num(fmt: str) -> Callable[[Any], str]:
    def format_value(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return format(value, fmt)

    return format_value


def text_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """Fixed-width table: ``columns`` are ``(key, heading, formatter)``."""
    cells = [[heading for _, heading, _ in columns]]
    cells += [[fmt(row.get(key)) for key, _, fmt in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


EVENT_TABLE: list[Column] = [
    ("stream", "stream", str), ("event_id", "id", str), ("kind", "kind", str),
    ("t_peak_ms", "t_peak ms", _num(".1f")), ("x_um", "x µm", _num(".1f")),
    ("amplitude_dff0", "ΔF/F0", _num(".2f")), ("fwhm_um", "FWHM µm", _num(".2f")),
    ("fdhm_ms", "FDHM ms", _num(".1f")), ("rise_ms", "rise ms", _num(".1f")),
    ("t50_ms", "t50 ms", _num(".1f")), ("score", "score", _num(".2f")),
    ("significance", "signif.", _num(".1f")), ("flags", "flags", str),
]

CELL_TABLE: list[Column] = [
    ("stream", "stream", str), ("cell", "cell", str), ("label", "class", str),
    ("confidence", "conf.", _num(".2f")), ("n_sparks", "sparks", str),
    ("n_puffs", "puffs", str), ("n_waves", "waves", str),
    ("freq", "sparks/100µm/s", _num(".2f")),
    ("amplitude_dff0", "med ΔF/F0", _num(".2f")), ("fwhm_um", "med FWHM", _num(".2f")),
    ("fdhm_ms", "med FDHM", _num(".1f")), ("rise_ms", "med rise", _num(".1f")),
    ("t50_ms", "med t50", _num(".1f")),
    ("lookahead_ms", "look-ahead ms", _num(".0f")),
    ("delay_p50_ms", "delay p50 ms", _num(".1f")), ("delay_p99_ms", "delay p99 ms", _num(".1f")),
]


PHENOTYPE_TABLE: list[Column] = [
    ("cell_id", "cell", str), ("structure_score", "score", _num(".2f")),
    ("sarcomerisation", "sarc.", _num("")), ("directionality", "dir.", _num("")),
    ("cell_source", "source", lambda v: "-" if v is None or v != v else str(v)),
    ("sarcomere_length_um", "SL µm", _num(".2f")), ("n_sparks", "sparks", str),
    ("n_puffs", "puffs", str), ("n_waves", "waves", str),
    ("sparks_per_100um2_s", "sparks/100µm²/s", _num(".2f")),
    ("sparks_per_100um_s", "sparks/100µm/s", _num(".2f")),
    ("amplitude_dff0", "med ΔF/F0", _num(".2f")), ("label", "class", lambda v: v or "-"),
    ("confidence", "conf.", _num(".2f")),
]


QUALITY_TABLE: list[Column] = [
    ("stream", "stream", str), ("resting_snr", "resting SNR", _num(".1f")),
    ("detection_limit_dff0", "limit ΔF/F0", _num(".2f")),
    ("saturated_pct", "saturated %", _num(".2f")), ("bleaching_pct", "bleaching %", _num(".0f")),
    ("calibration", "calibration", str), ("reported", "events", str),
    ("rejected", "not significant", str), ("measurable_pct", "measurable %", _num(".0f")),
    ("imprecise", "imprecise", str),
]


def quality_row(summary: dict) -> dict:
    """One :data:`QUALITY_TABLE` row from a summary with a ``quality`` report."""
    quality = summary.get("quality") or {}
    events = quality.get("events", {})
    calibration = quality.get("calibration", {})

    def pct(value):
        return None if value is None else 100.0 * value

    in_range = calibration.get("in_range")
    return {
        "stream": summary.get("stream", ""), "resting_snr": quality.get("resting_snr"),
        "detection_limit_dff0": quality.get("detection_limit_dff0"),
        "saturated_pct": pct(quality.get("saturated_fraction")),
        "bleaching_pct": pct(quality.get("bleaching_fraction")),
        "calibration": {True: "in range", False: "OUTSIDE", None: "n/a"}[in_range],
        "reported": str(events.get("reported", "-")),
        "rejected": str(events.get("rejected_not_significant", "-")),
        "measurable_pct": pct(events.get("measurable_fraction")),
        "imprecise": str(events.get("imprecise", "-")),
    }


def events_table(events: Iterable[Event], limit: int | None = None) -> str:
    """The events as a table (the first ``limit`` rows, with a count of the rest)."""
    rows = [e.to_dict() for e in events]
    shown = rows if limit is None else rows[:limit]
    text = text_table(shown, EVENT_TABLE)
    if len(shown) < len(rows):
        text += f"... and {len(rows) - len(shown)} more\n"
    return text


def parameter_medians(events: Iterable[Event], kind: str = "spark") -> dict[str, float]:
    """Median amplitude, FWHM, FDHM, rise and t50 of the events of ``kind``."""
    rows = [e.to_dict() for e in events if e.kind == kind]
    out = {}
    for key in ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms"):
        values = np.array([r[key] for r in rows], float)
        values = values[np.isfinite(values)]
        out[key] = float(np.median(values)) if values.size else math.nan
    return out
