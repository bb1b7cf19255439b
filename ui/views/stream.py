"""One stream's page: header, alerts, key numbers, live image, health, distributions, events."""

from __future__ import annotations

import time

import streamlit as st

from ui.config import DashboardConfig
from ui.data import StoreReader, is_stale
from ui.live import PubSubscriber
from ui.plots import figure_bytes, histograms_figure
from ui.views import events as events_view
from ui.views.common import guarded
from ui.views.health import render_health
from ui.views.preview import render_preview
from ui.views.status import render_alerts, render_header, render_key_numbers

#: Seconds between redraws of the live histograms.
HISTOGRAM_EVERY_S = 5.0


def render_stream(
    reader: StoreReader, stream: dict, config: DashboardConfig,
    subscriber: PubSubscriber | None, live: bool,
) -> None:
    """Everything about ``stream``; ``live`` adds the preview and keeps the table short."""
    name = stream["stream"]
    stats = reader.latest_stats(name)
    cell = reader.cell_summary(name)
    events = reader.events(name)
    render_header(stream, stale=is_stale(stream, stats, config.stale_s))
    pub_last = subscriber.last_message_s(name) if subscriber else None
    render_alerts(stream, stats, config.stale_s, pub_last,
                  config.events_endpoint if live else "")
    render_key_numbers(stream, stats, events, cell, new_events=_new_events(name, len(events)))
    left, right = st.columns([2.3, 1], gap="medium")
    with left, guarded("the live image"):
        render_preview(stream, events, subscriber)
    with right, guarded("the pipeline health"):
        render_health(stream, stats)
    with guarded("the distributions"):
        st.markdown("**Distributions**")
        st.image(_histograms_png(name, events, live), width="stretch")
    with guarded("the event table"):
        st.markdown("**Events** — newest first")
        if live:
            events_view.render_table(events, limit=events_view.LIVE_TABLE_ROWS, key="live_table")
        else:
            events_view.render_history_events(stream, events)


def _new_events(stream: str, n_events: int) -> int | None:
    """Events added since this session's previous refresh of the same stream."""
    key = f"seen_events_{stream}"
    previous = st.session_state.get(key)
    st.session_state[key] = n_events
    return None if previous is None else n_events - previous


def _histograms_png(stream: str, events, live: bool) -> bytes:
    """The histograms as PNG, redrawn when the events changed (live: at most every
    :data:`HISTOGRAM_EVERY_S`, distributions change slowly and drawing costs ~0.3 s)."""
    changed = (stream, len(events), int(events["id"].max()) if len(events) else 0)
    cached = st.session_state.get("histograms_png")
    if cached and cached[0] == changed:
        return cached[2]
    if live and cached and cached[0][0] == stream and time.time() - cached[1] < HISTOGRAM_EVERY_S:
        return cached[2]
    png = figure_bytes(histograms_figure(events), fmt="png", dpi=110)
    st.session_state["histograms_png"] = (changed, time.time(), png)
    return png
