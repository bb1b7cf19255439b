"""Stream header, alerts (dead engine, input errors, gaps), key numbers and pipeline health."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from acquisition.stream_kind import StreamKind
from ui.data import last_update_s, stream_kind_of
from ui.engine_state import engine_state, lag_s
from ui.views.common import ago, clock, count, number


def stream_caption(stream: dict) -> str:
    """``cell · line-scan 512 px · 0.20 µm/px · 1.50 ms/line`` from the stream row."""
    shape = stream.get("shape") or []
    is_movie = stream_kind_of(stream) is StreamKind.MOVIE
    size = " × ".join(str(n) for n in shape) + " px" if shape else ""
    parts = [
        f"cell {stream['cell']}" if stream.get("cell") not in (None, "", stream["stream"]) else "",
        ("movie " if is_movie else "line-scan ") + size,
        number(stream.get("pixel_um"), 2, "µm/px") if stream.get("pixel_um") else "",
        number(stream.get("dt_ms"), 2, "ms/frame" if is_movie else "ms/line")
        if stream.get("dt_ms") else "",
        f"field {stream['field']} (events attributed to its cells: Cells view)"
        if stream.get("field") else "",
    ]
    return " · ".join(p for p in parts if p and p != "—")


def render_header(stream: dict, stale: bool = False) -> None:
    """Stream title, live/stopped badge and calibration."""
    if stream.get("live") and stale:
        badge = ":orange-badge[● live, no updates]"
    elif stream.get("live"):
        badge = ":green-badge[● live]"
    else:
        badge = f":gray-badge[■ stopped {clock(stream.get('stopped_s'))}]"
    st.markdown(f"### {stream['stream']} {badge}")
    st.caption(f"{stream_caption(stream)} · started {clock(stream.get('started_s'))}")


def render_alerts(
    stream: dict, stats: dict | None, stale_s: float, pub_last_s: float | None = None,
    pub_endpoint: str = "",
) -> None:
    """Engine gone / behind / live feed silent (told apart, :mod:`ui.engine_state`), the
    stream's alarms (recording failed, analysis failed, abandoned), input errors and gaps."""
    state = engine_state(stream, stats, stale_s, pub_endpoint, pub_last_s)
    if state == "gone":
        last = last_update_s(stream, stats)
        st.warning(
            f"**Engine gone? It has not updated this live stream since {clock(last)} "
            f"({ago(last)}).** Is `castream serve` still running? The numbers below are the "
            "last ones stored.", icon=":material/power_off:",
        )
    elif state == "behind":
        st.warning(
            f"**The engine is {number(lag_s(stats), 1, 's')} behind the input**: analysis is "
            "slower than acquisition and catches up later. Nothing is lost — every chunk is "
            "recorded first.", icon=":material/hourglass_top:",
        )
    elif state == "feed_silent":
        since = (f"since {clock(pub_last_s)} ({ago(pub_last_s)})" if pub_last_s
                 else "since the dashboard connected")
        st.warning(
            f"The engine is running and up to date, but its live feed `{pub_endpoint}` has been "
            f"silent {since}: no live image. Is it the engine's `--publish` address?",
            icon=":material/wifi_off:",
        )
    render_stream_alarms(stream, stats)
    stats = stats or {}
    errors = _int(stats.get("errors"))
    if errors:
        by_code = stats.get("errors_by_code") or {}
        detail = ", ".join(f"{code}: {n}" for code, n in sorted(by_code.items()))
        st.error(f"**{errors:,} input error{'s' if errors != 1 else ''}** on this stream" + (f" ({detail})" if detail else "")
                 + ". Bad messages were rejected and counted; the stream keeps being analyzed.",
                 icon=":material/error:")
    gaps = _int(stats.get("gaps"))
    if gaps:
        st.warning(f"**{gaps:,} frames missing** (sequence gaps in the input).", icon=":material/warning:")


def render_stream_alarms(stream: dict, stats: dict | None) -> None:
    """Alarms the engine put in the stream's statistics, each naming the stream."""
    stats, name = stats or {}, stream["stream"]
    if stats.get("recording_failure"):
        st.error(f"**Recording of stream {name} failed**: {stats['recording_failure']}. Its "
                 "publisher was told; later data of this stream are refused.",
                 icon=":material/sd_card_alert:")
    if stats.get("failed"):
        st.error(f"**Analysis of stream {name} stopped**: {stats['failed']}. Its recording goes "
                 "on; other streams are not affected.", icon=":material/error:")
    if stats.get("abandoned"):
        st.warning(f"**Stream {name} was abandoned by its publisher** (no stop; closed after "
                   "its idle timeout). Everything received is recorded.",
                   icon=":material/link_off:")


def _int(value) -> int:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0
    return int(value) if math.isfinite(value) else 0


def spark_frequency(stats: dict | None) -> float:
    """Sparks per 100 µm (of cell length along X) per s, as the engine reports it."""
    value = (stats or {}).get("spark_freq_per_100um_s")
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def render_key_numbers(
    stream: dict, stats: dict | None, events: pd.DataFrame, cell: dict | None,
    new_events: int | None = None,
) -> None:
    """Events, sparks/puffs/waves, spark frequency and the cell classification."""
    kinds = events["kind"].value_counts() if not events.empty else pd.Series(dtype=int)
    freq, unit = spark_frequency(stats), "/100 µm/s"
    cols = st.columns([1, 1.4, 1.2, 1.6])
    cols[0].metric("Events", count(len(events)),
                   delta=f"+{new_events}" if new_events else None)
    cols[1].metric("Sparks · puffs · waves",
                   " · ".join(count(kinds.get(k, 0)) for k in ("spark", "puff", "wave")))
    cols[2].metric(f"Spark frequency ({unit})", number(freq, 2))
    with cols[3]:
        render_cell(cell)


def render_cell(cell: dict | None) -> None:
    """The running cell classification, its confidence and the sparks it rests on."""
    if not cell:
        st.metric("Cell class", "—", help="No classification yet (needs sparks).")
        return
    confidence = float(cell.get("confidence") or math.nan)
    st.metric("Cell class", str(cell.get("label") or "—").upper(),
              help="Vote of the sparks' per-spark classification, weighted by how significant "
                   "each spark is; 'undecided' below 80 % confidence.")
    votes = cell.get("votes") or {}
    vote_text = " / ".join(f"{name} {n}" for name, n in votes.items())
    skipped = _int(cell.get("n_skipped")) + _int(cell.get("n_out_of_range"))
    notes = cell.get("notes") or ""
    st.caption(
        f"confidence **{number(100 * confidence, 0, '%')}** · from **{count(cell.get('n_sparks'))} "
        f"sparks**" + (f" ({skipped} unmeasurable or out of range)" if skipped else "")
        + (f" · votes {vote_text}" if vote_text else "")
        + (f" · confidence lowered: {notes}" if notes else "")
    )
