"""Sidebar form to start a simulated or replayed stream, and the list of started ones."""

from __future__ import annotations

import random

import streamlit as st

from ui.launcher import Launched, LaunchRequest, launch
from ui.views.common import ago

SOURCES = {
    "linescan": "Simulated line-scan",
    "movie": "Simulated movie (full frame)",
    "replay": "Replay a TIFF file",
}


def render_launcher(ingest_endpoint: str) -> None:
    """The "Start a stream" expander: a form, then the state of each process it started."""
    with st.sidebar.expander(":material/play_arrow: Start a stream", expanded=False):
        request = _form(ingest_endpoint)
        if request is not None:
            try:
                st.session_state.setdefault("launched", []).append(launch(request))
                st.success(f"Started {request.describe()}.")
            except (ValueError, OSError) as exc:
                st.error(f"Could not start: {exc}")
        _render_launched(st.session_state.get("launched", []))


def _form(ingest_endpoint: str) -> LaunchRequest | None:
    with st.form("launch_form", border=False):
        source = st.selectbox("Source", list(SOURCES), format_func=SOURCES.get)
        ingest = st.text_input("Engine ingest endpoint", value=ingest_endpoint,
                               placeholder="tcp://127.0.0.1:5555",
                               help="`castream serve --endpoint` of the running engine")
        cols = st.columns(2)
        phenotype = cols[0].selectbox("Phenotype", ["wt", "cpvt"], help="simulated cells only")
        seconds = cols[1].number_input("Seconds", 1.0, 600.0, 20.0, step=5.0)
        seed = cols[0].number_input("Seed", 0, 10**6, _session_seed(), step=1)
        rate = cols[1].number_input("Speed (× real time)", 0.1, 50.0, 1.0, step=0.5)
        path = st.text_input("TIFF file (replay)", placeholder="/data/cell01.tif")
        submitted = st.form_submit_button("Start", type="primary", width="stretch")
    if not submitted:
        return None
    if not ingest:
        st.error("Give the engine's ingest endpoint (start the dashboard with `--ingest`).")
        return None
    return LaunchRequest(source=source, ingest=ingest.strip(), seconds=float(seconds),
                         phenotype=phenotype, seed=int(seed), rate=float(rate), file=path.strip())


def _session_seed() -> int:
    if "launch_seed" not in st.session_state:
        st.session_state["launch_seed"] = random.randint(1, 9999)
    return st.session_state["launch_seed"]


def _render_launched(launched: list[Launched]) -> None:
    for item in reversed(launched[-5:]):
        state = item.state()
        text = f"**{item.label}** — {state}, started {ago(item.started_s)}"
        if state.startswith("failed"):
            st.error(text + (f"\n\n```\n{item.log_tail()}\n```" if item.log_tail() else ""))
        else:
            st.caption(text)
