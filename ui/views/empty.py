"""What the page shows before there is anything to show: no store file yet, or no stream."""

from __future__ import annotations

import streamlit as st

from ui.config import DashboardConfig


def how_to_start(config: DashboardConfig) -> str:
    """The two commands that produce a first stream for this dashboard."""
    ingest = config.ingest_endpoint or "tcp://127.0.0.1:5555"
    publish = config.events_endpoint or "tcp://127.0.0.1:5556"
    return (
        f"castream serve --endpoint {ingest} --publish {publish} \\\n"
        f"    --store {config.store_path} --record-dir recordings\n"
        f"castream simulate --seconds 30 --out /tmp/sim --stream-to {ingest}\n"
        f"# or: castream replay my_linescan.tif --endpoint {ingest}"
    )


def render_no_data(config: DashboardConfig, problem: str | None) -> None:
    """Friendly waiting screen: no store yet (``problem``) or a store without streams."""
    if problem and "does not exist" in problem:
        st.info(f"**Waiting for the engine…** The store `{config.store_path}` does not exist "
                "yet; it appears when `castream serve --store` starts.", icon=":material/hourglass_empty:")
    elif problem:
        st.warning(f"**The store cannot be read yet.** {problem}", icon=":material/hourglass_empty:")
    else:
        st.info("**Waiting for the first stream…** The engine is up but nothing has been "
                "streamed to it yet.", icon=":material/hourglass_empty:")
    st.markdown("Start the engine and send it a stream:")
    st.code(how_to_start(config), language="bash")
    st.caption("Or use **Start a stream** in the sidebar to send a simulated cell or replay "
               "a file to a running engine. This page refreshes by itself.")
