"""Pipeline health: rates, lag, latency (look-ahead + compute delay), recording, gaps, errors,
queue depth and which model/backend runs."""

from __future__ import annotations

import math

import streamlit as st

from ui.engine_state import lag_s
from ui.views.common import clock, count, number


def lag_ms(stream: dict, stats: dict) -> float:
    """Frames received but not yet analysed, in ms (``lag_frames`` × ``dt_ms``); blind to
    data waiting before the ingest -- the fallback for engines without ``lag_s``."""
    try:
        return float(stats.get("lag_frames")) * float(stream.get("dt_ms"))
    except (TypeError, ValueError):
        return math.nan


def lag_row(stream: dict, stats: dict) -> tuple[str, str, str]:
    """The Lag row: wall-clock seconds when the engine reports them."""
    seconds = lag_s(stats)
    if math.isfinite(seconds):
        return ("Lag", number(seconds, 1, "s"),
                "wall-clock age of the oldest data not yet analysed (includes the look-ahead)")
    return ("Lag", number(lag_ms(stream, stats), 0, "ms"),
            "frames received but not analysed × interval (this engine reports no wall-clock lag)")


def health_rows(stream: dict, stats: dict | None) -> list[tuple[str, str, str]]:
    """``(label, value, help)`` for each health number (em dash when not reported)."""
    stats = stats or {}
    return [
        ("Input rate", number(stats.get("input_rate_hz"), 0, "fr/s"), "frames or lines received per second"),
        ("Analysis rate", number(stats.get("analysis_rate_hz"), 0, "fr/s"), "frames finalized per second"),
        lag_row(stream, stats),
        ("Look-ahead", number(stats.get("lookahead_ms", stream.get("lookahead_ms")), 0, "ms"),
         "built-in latency of the method: frames a prediction waits for"),
        ("Compute p50 / p99",
         f"{number(stats.get('compute_p50_ms'), 1)} / {number(stats.get('compute_p99_ms'), 1)} ms",
         "compute delay per window, median and 99th percentile"),
        ("Frames in / analyzed",
         f"{count(stats.get('frames_in'))} / {count(stats.get('frames_analyzed'))}", ""),
        ("Frames recorded", count(stats.get("frames_recorded")), "raw frames written to disk"),
        ("Gaps", count(stats.get("gaps")), "frames missing in the input sequence"),
        ("Errors", count(stats.get("errors")), "input messages rejected"),
        ("Queue depth", count(stats.get("queue_depth")), "items waiting for the analysis"),
    ]


_COMPACT_CSS = """<style>
.st-key-health [data-testid="stMetricValue"], .st-key-quality [data-testid="stMetricValue"]
  { font-size: 1.25rem; }
.st-key-health [data-testid="stMetric"], .st-key-quality [data-testid="stMetric"] { padding: 0; }
.st-key-health [data-testid="stMetricLabel"] p, .st-key-quality [data-testid="stMetricLabel"] p
  { font-size: 0.8rem; color: #555; }
</style>"""


def render_health(stream: dict, stats: dict | None) -> None:
    """A compact grid of the health numbers plus the model/backend line."""
    st.html(_COMPACT_CSS)
    rows = health_rows(stream, stats)
    with st.container(key="health", border=True):
        st.markdown("**Pipeline health**")
        for start in range(0, len(rows), 2):
            cols = st.columns(2)
            for col, (label, value, help_text) in zip(cols, rows[start:start + 2], strict=False):
                col.metric(label, value, help=help_text or None)
    backend = stream.get("backend") or "—"
    model = stream.get("model") or "—"
    reason = stream.get("backend_reason")
    st.caption(
        f"model **{model}** on **{backend}**" + (f" — {reason}" if reason else "")
        + f" · last sample {clock((stats or {}).get('t_s'))}"
    )
