"""One stream's page: header, alerts, key numbers, live image, health, distributions, events."""

from __future__ import annotations

import time

import streamlit as st

from ui.config import DashboardConfig
from ui.data import StoreReader, is_stale, stream_kind_of
from ui.live import PubSubscriber
from ui.plots import figure_bytes, histograms_figure
from ui.views import events as events_view
from ui.views.common import guarded
from ui.views.health import render_health
from ui.views.preview import render_preview
from ui.views.quality import render_quality, render_quality_alerts
from ui.views.status import render_alerts, render_header, render_key_numbers

#: Seconds between redraws of the live histograms.
HISTOGRAM_EVERY_S = 5.0


def render_stream(
    reader: StoreReader, stream: dict, config: DashboardConfig,
    subscriber: PubSubscriber | None, live: bool,
) -> None:
    """Everything about ``stream``; ``live`` adds the preview and keeps the table short.

    Each section sits in its own container so that a section whose element count changes
    (an alert appears) does not shift the others while a refresh is drawn.
    """
    name = stream["stream"]
    stats = reader.latest_stats(name)
    if stream_kind_of(stream).is_image:
        render_image_stream(stream, stats)
        return
    cell = reader.cell_summary(name)
    events = reader.events(name)
    with st.container():
        render_header(stream, stale=is_stale(stream, stats, config.stale_s))
    with st.container():
        pub_last = subscriber.last_message_s(name) if subscriber else None
        render_alerts(stream, stats, config.stale_s, pub_last,
                      config.events_endpoint if live else "")
        render_quality_alerts(stats)
    with st.container():
        new_events = _new_events(name, len(events)) if live else None
        render_key_numbers(stream, stats, events, cell, new_events=new_events)
    left, right = st.columns([2.3, 1], gap="medium")
    with left, guarded("the live image"):
        render_preview(stream, events, subscriber, live)
    with right, guarded("the pipeline health"):
        render_health(stream, stats)
    with right, guarded("the recording quality"):
        render_quality(stats)
    with st.container(), guarded("the distributions"):
        st.markdown("**Distributions**")
        st.image(_histograms_png(name, events, live), width="stretch")
    with st.container(), guarded("the event table"):
        st.markdown("**Events** — newest first")
        if live:
            events_view.render_table(events, limit=events_view.LIVE_TABLE_ROWS, key="live_table")
        else:
            events_view.render_history_events(stream, events)


def render_image_stream(stream: dict, stats: dict | None) -> None:
    """A structure image stream: what became of it; its cells are in the Cells view."""
    badge = ":green-badge[● live]" if stream.get("live") else ":gray-badge[■ stopped]"
    st.markdown(f"### {stream['stream']} {badge}")
    shape = " × ".join(str(n) for n in stream.get("shape") or [])
    st.caption(f"structure image {shape} px · {stream.get('pixel_um')} µm/px · field "
               f"{stream.get('field') or '—'}")
    stats = stats or {}
    cells = stats.get("cells") or {}
    if stats.get("cells_error"):
        st.error(f"**Image not analysed or without cells** [{stats['cells_error']}]: "
                 f"{stats.get('failed') or 'see the engine log'}", icon=":material/error:")
    if cells.get("n_candidates") is not None:
        st.info(f"{cells['n_candidates']} candidate ROIs, {cells.get('n_cells', 0)} cells: "
                "choose **Cells** in the sidebar to see them.", icon=":material/biotech:")
    elif cells.get("labels_for_field"):
        st.info(f"ROIs ({cells.get('n_rois', 0)}) for the next structure image of field "
                f"{cells['labels_for_field']}.")
    elif not stats:
        st.info("Waiting for the engine to analyse the image…")


def _new_events(stream: str, n_events: int) -> int | None:
    """Events added since this session's previous refresh of the same stream."""
    key = f"seen_events_{stream}"
    previous = st.session_state.get(key)
    st.session_state[key] = n_events
    return None if previous is None else n_events - previous


def _histograms_png(stream: str, events, live: bool) -> bytes:
    """The histograms as PNG, redrawn when the events changed. Live, a large sample is
    redrawn at most every :data:`HISTOGRAM_EVERY_S` unless it grew by 20 % (drawing costs
    ~0.3 s and the distributions of many events change slowly)."""
    n_events = len(events)
    changed = (stream, n_events, int(events["id"].max()) if n_events else 0)
    cached = st.session_state.get("histograms_png")
    if cached and cached[0] == changed:
        return cached[2]
    if live and cached and cached[0][0] == stream and _can_wait(cached, n_events):
        return cached[2]
    png = figure_bytes(histograms_figure(events), fmt="png", dpi=110)
    st.session_state["histograms_png"] = (changed, time.time(), png)
    return png


def _can_wait(cached: tuple, n_events: int) -> bool:
    (_, cached_n, _), drawn_s, _ = cached
    recent = time.time() - drawn_s < HISTOGRAM_EVERY_S
    return recent and cached_n >= 50 and n_events < 1.2 * cached_n
