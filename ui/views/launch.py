"""Sidebar form to start a simulated or replayed stream, and the list of started ones."""

from __future__ import annotations

import random
from pathlib import Path

import streamlit as st

from ui.config import DashboardConfig
from ui.launcher import Launched, LaunchRequest, launch, replayable_files
from ui.views.common import ago

SOURCES = {
    "linescan": "Simulated line-scan",
    "movie": "Simulated movie (full frame)",
    "replay": "Replay a TIFF file",
}


def render_launcher(config: DashboardConfig) -> None:
    """The "Start a stream" expander (only with ``--allow-launch DIR`` and ``--ingest``): a
    form, then the state of each process it started."""
    if not config.launcher_on:
        return
    with st.sidebar.expander(":material/play_arrow: Start a stream", expanded=False):
        request = _form(config)
        launched = st.session_state.setdefault("launched", [])
        if request is not None:
            _start(request, launched, Path(config.store_path).parent / "launched")
        _render_launched(launched)


def _start(request: LaunchRequest, launched: list[Launched], work_dir: Path) -> None:
    """Launch ``request`` unless the same one is still running (same stream id twice would
    restart that stream in the engine)."""
    if any(item.label == request.describe() and item.state() == "running" for item in launched):
        st.warning(f"{request.describe()} is already running; change the seed for another cell.")
        return
    try:
        launched.append(launch(request, work_dir))
        st.success(f"Started {request.describe()}.")
    except (ValueError, OSError) as exc:
        st.error(f"Could not start: {exc}")


def _form(config: DashboardConfig) -> LaunchRequest | None:
    with st.form("launch_form", border=False):
        source = st.selectbox("Source", list(SOURCES), format_func=SOURCES.get)
        st.caption(f"into the engine at `{config.ingest_endpoint}`")
        cols = st.columns(2)
        phenotype = cols[0].selectbox("Phenotype", ["wt", "cpvt"], help="simulated cells only")
        seconds = cols[1].number_input("Seconds", 1.0, 600.0, 20.0, step=5.0)
        seed = cols[0].number_input("Seed", 0, 10**6, _session_seed(), step=1)
        rate = cols[1].number_input("Speed (×)", 0.1, 50.0, 1.0, step=0.5,
                                    help="multiple of real time")
        path = st.selectbox(f"TIFF file (replay, from {config.launch_dir})",
                            replayable_files(config.launch_dir), index=None)
        submitted = st.form_submit_button("Start", type="primary", width="stretch")
    if not submitted:
        return None
    return LaunchRequest(source=source, ingest=config.ingest_endpoint, seconds=float(seconds),
                         phenotype=phenotype, seed=int(seed), rate=float(rate),
                         file=path or "", allowed_dir=config.launch_dir,
                         curve_dir=config.curve_dir, curve_name=config.curve_name)


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
