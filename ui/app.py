"""castream dashboard: the Streamlit page.

Run it with ``castream dashboard --store FILE [--events tcp://...] [--ingest tcp://...
--allow-launch DIR]``
(settings travel as environment variables, see :mod:`ui.config`). The page only reads: the
engine's SQLite store (read-only), optionally its PUB socket for live images and, for the
Cells view's structure images, ``serve``'s record directory. The live
part refreshes itself with ``st.fragment(run_every=...)``; every section catches its own
errors and shows a short message instead of a traceback.
"""

from __future__ import annotations

import logging

import streamlit as st

from ui.config import DashboardConfig
from ui.data import StoreReader, StoreUnavailable
from ui.live import PubSubscriber
from ui.views import empty
from ui.views.cells_page import load_fields, pick_field, render_cells_view
from ui.views.common import guarded
from ui.views.launch import render_launcher
from ui.views.picker import Selection, pick_stream
from ui.views.stream import render_stream

log = logging.getLogger("castream.ui")


@st.cache_resource(show_spinner=False)
def get_reader(path: str) -> StoreReader:
    """One read-only store reader per file, shared by all sessions."""
    return StoreReader(path)


@st.cache_resource(show_spinner=False)
def get_subscriber(endpoint: str, curve_dir: str = "", curve_name: str = "client",
                   ) -> PubSubscriber | None:
    """One PUB subscriber per endpoint, shared by all sessions (None without an endpoint);
    with CURVE client keys when the dashboard was given ``--curve-dir``."""
    if not endpoint:
        return None
    curve = None
    if curve_dir:
        from acquisition.curve import CurveClient

        curve = CurveClient.from_folder(curve_dir, curve_name)
    return PubSubscriber(endpoint, curve=curve)


def load_streams(reader: StoreReader) -> tuple[list[dict], str | None]:
    """The store's streams, or ``([], reason)`` when the store cannot be read yet."""
    try:
        return reader.streams(), None
    except StoreUnavailable as exc:
        return [], str(exc)
    except Exception as exc:  # noqa: BLE001 - shown on the page, logged in full
        log.exception("reading the stream list failed")
        return [], f"cannot read the store: {type(exc).__name__}: {exc}"


def stream_keys(streams: list[dict]) -> tuple:
    """What changes the picker: stream ids and whether each is live."""
    return tuple((row["stream"], bool(row.get("live"))) for row in streams)


def rerun_if_streams_changed(streams: list[dict]) -> None:
    """Rerun the whole page (to refresh the picker) when streams appear, stop or vanish."""
    keys = stream_keys(streams)
    if st.session_state.get("stream_keys", keys) != keys:
        st.session_state["stream_keys"] = keys
        st.rerun(scope="app")
    st.session_state["stream_keys"] = keys


def live_view(config: DashboardConfig, selection: Selection) -> None:
    """Body of the self-refreshing fragment: re-read the store, redraw the stream."""
    reader = get_reader(config.store_path)
    streams, problem = load_streams(reader)
    rerun_if_streams_changed(streams)
    if problem or not streams:
        empty.render_no_data(config, problem)
        return
    stream = selection.resolve(streams)
    if stream is None:
        st.info("The selected stream is no longer in the store; pick another one.")
        return
    with guarded("the live stream"):
        subscriber = get_subscriber(config.events_endpoint, config.curve_dir, config.curve_name)
        render_stream(reader, stream, config, subscriber, live=True)


def history_view(config: DashboardConfig, selection: Selection, streams: list[dict]) -> None:
    """A past (or running) stream, read once: full table, distributions, CSV export."""
    stream = selection.resolve(streams)
    if stream is None:
        st.info("Pick a stream in the sidebar.")
        return
    with guarded("the stream"):
        render_stream(get_reader(config.store_path), stream, config, None, live=False)


def cells_view(config: DashboardConfig, field: str | None) -> None:
    """Body of the self-refreshing Cells fragment: re-read the store, redraw the field."""
    reader = get_reader(config.store_path)
    streams, problem = load_streams(reader)
    fields, _ = load_fields(reader)
    keys = tuple(row["id"] for row in fields)
    if st.session_state.get("field_keys", keys) != keys:  # a new structure image: new picker
        st.session_state["field_keys"] = keys
        st.rerun(scope="app")
    if problem:
        empty.render_no_data(config, problem)
        return
    with guarded("the cells"):
        render_cells_view(reader, config, field, streams)


def cells_mode(config: DashboardConfig) -> None:
    """The field picker in the sidebar, then the Cells view (refreshing itself)."""
    fields, _ = load_fields(get_reader(config.store_path))
    st.session_state["field_keys"] = tuple(row["id"] for row in fields)
    field = pick_field(fields)
    st.fragment(run_every=config.refresh_s)(cells_view)(config, field and field["field"])


def sidebar_footer(config: DashboardConfig) -> None:
    """Where the page reads from."""
    st.sidebar.divider()
    st.sidebar.caption(
        f"Store `{config.store_path}`  \n"
        f"Live feed `{config.events_endpoint or 'off'}`  \n"
        f"Refresh every {config.refresh_s:g} s"
    )


def main() -> None:
    """Render the page once (Streamlit reruns it on interaction)."""
    st.set_page_config(page_title="castream", page_icon=":material/monitor_heart:", layout="wide")
    config = DashboardConfig.from_env()
    st.sidebar.title("castream")
    st.sidebar.caption("Live Ca²⁺ spark, puff and wave analysis")
    streams, problem = load_streams(get_reader(config.store_path))
    st.session_state["stream_keys"] = stream_keys(streams)
    selection = pick_stream(streams)
    if selection.mode == "Cells":
        with guarded("the cells"):
            cells_mode(config)
        sidebar_footer(config)
        return
    with guarded("the stream launcher"):
        render_launcher(config)
    sidebar_footer(config)
    if selection.mode == "History" and streams:
        history_view(config, selection, streams)
    else:
        st.fragment(run_every=config.refresh_s)(live_view)(config, selection)


if __name__ == "__main__":
    main()
