"""Sidebar: live/history/cells mode and the stream picker (live streams first, then past
ones); the Cells mode picks a field instead (:func:`ui.views.cells_page.pick_field`)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ui.views.common import clock

AUTO = "__auto__"
MODES = ("Live", "History", "Cells")


@dataclass(frozen=True)
class Selection:
    """What the user picked: ``mode`` (``"Live"`` | ``"History"`` | ``"Cells"``) and a
    stream id (None in Cells mode).

    ``follow`` means "the newest live stream", re-resolved at every refresh.
    """

    mode: str
    stream_id: str | None
    follow: bool = False

    def resolve(self, streams: list[dict]) -> dict | None:
        """The selected stream's current row in ``streams`` (None when it is gone)."""
        if self.follow:
            return newest_live(streams)
        return next((row for row in streams if row["stream"] == self.stream_id), None)


def stream_label(row: dict) -> str:
    """``● stream · cell`` for live streams, ``stream · cell · HH:MM:SS`` for past ones."""
    cell = f" · {row['cell']}" if row.get("cell") and row["cell"] != row["stream"] else ""
    if row.get("live"):
        return f"● {row['stream']}{cell} (live)"
    return f"{row['stream']}{cell} · {clock(row.get('started_s'))}"


def pick_stream(streams: list[dict]) -> Selection:
    """Render the mode radio and the stream select box in the sidebar."""
    mode = st.sidebar.radio("Mode", MODES, horizontal=True, key="mode",
                            help="Live follows the engine; History browses and exports past "
                                 "streams; Cells shows the cells of structure images and the "
                                 "Ca²⁺ events attributed to them.")
    if mode == "Cells":
        return Selection(mode, None)
    by_id = {row["stream"]: row for row in streams}
    options = list(by_id)
    if mode == "Live":
        options = [AUTO, *options]
    if not streams:
        st.sidebar.caption("No streams in the store yet.")
        return Selection(mode, None, follow=mode == "Live")
    choice = st.sidebar.selectbox(
        "Stream", options, key=f"stream_{mode}",
        format_func=lambda s: "Newest live stream (follow)" if s == AUTO else stream_label(by_id[s]),
    )
    if choice == AUTO:
        return Selection(mode, None, follow=True)
    return Selection(mode, choice)


def newest_live(streams: list[dict]) -> dict | None:
    """The most recently started live stream, else the most recent stream."""
    live = [row for row in streams if row.get("live")]
    pool = live or streams
    return max(pool, key=lambda r: r.get("started_s") or 0.0) if pool else None
