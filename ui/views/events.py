"""Event parameter distributions, the event table (newest first) and the CSV export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui.data import events_csv
from ui.plots import histograms_figure

#: Rows shown in the live table (the full table is in History mode / the CSV).
LIVE_TABLE_ROWS = 200

TABLE_COLUMNS = {
    "event_id": st.column_config.NumberColumn("id", format="%d"),
    "kind": st.column_config.TextColumn("kind"),
    "cell": st.column_config.TextColumn(
        "cell", help="id of the cell of the field's structure image the event lies in "
                     "(empty: outside every cell); see the Cells view"),
    "t_peak_ms": st.column_config.NumberColumn("t peak (ms)", format="%.1f"),
    "x_um": st.column_config.NumberColumn("x (µm)", format="%.2f"),
    "y_um": st.column_config.NumberColumn("y (µm)", format="%.2f"),
    "amplitude_dff0": st.column_config.NumberColumn("ΔF/F0", format="%.2f"),
    "fwhm_um": st.column_config.NumberColumn("FWHM (µm)", format="%.2f"),
    "fdhm_ms": st.column_config.NumberColumn("FDHM (ms)", format="%.1f"),
    "rise_ms": st.column_config.NumberColumn("rise (ms)", format="%.1f"),
    "t50_ms": st.column_config.NumberColumn("t50 (ms)", format="%.1f"),
    "score": st.column_config.NumberColumn("score", format="%.2f"),
    "significance": st.column_config.NumberColumn(
        "significance", format="%.1f", help="peak ΔF/F0 in local-noise SDs"),
    "flags": st.column_config.TextColumn("flags", help="why a value is empty or uncertain"),
}


def newest_first(events: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The events ordered by peak time, newest first, at most ``limit`` rows."""
    ordered = events.sort_values(["t_peak_ms", "event_id"], ascending=False)
    return ordered if limit is None else ordered.head(limit)


def table_columns(events: pd.DataFrame) -> list[str]:
    """The columns worth showing (``y_um`` only for movies, ``cell`` only when events were
    attributed to the cells of a structure image)."""
    columns = list(TABLE_COLUMNS)
    if "y_um" not in events or pd.to_numeric(events["y_um"], errors="coerce").isna().all():
        columns.remove("y_um")
    if not has_cell_ids(events):
        columns.remove("cell")
    return columns


def has_cell_ids(events: pd.DataFrame) -> bool:
    """Whether any event carries a cell id of a structure image (all digits)."""
    if "cell" not in events or events.empty:
        return False
    return bool(events["cell"].astype(str).str.fullmatch(r"\d+").any())


def render_histograms(events: pd.DataFrame) -> None:
    """Amplitude, FWHM, FDHM, rise and t50 distributions, stacked by kind."""
    st.pyplot(histograms_figure(events), clear_figure=True, width="stretch")


def render_table(events: pd.DataFrame, limit: int | None, key: str) -> None:
    """The event table, newest first (``limit`` rows; None = all)."""
    shown = newest_first(events, limit)
    if limit is not None and len(events) > limit:
        st.caption(f"Newest {limit} of {len(events):,} events (History mode shows all).")
    st.dataframe(
        shown[table_columns(events)], hide_index=True, height=320, key=key,
        column_config=TABLE_COLUMNS, placeholder="—",
    )


def render_history_events(stream: dict, events: pd.DataFrame) -> None:
    """Kind filter, full table and CSV download of one stream."""
    kinds = st.pills("Kinds", ["spark", "puff", "wave"], selection_mode="multi",
                     default=["spark", "puff", "wave"], key="history_kinds")
    chosen = events[events["kind"].isin(kinds or [])]
    render_table(chosen, limit=None, key="history_table")
    st.download_button(
        f"Download {len(chosen):,} events (CSV)", events_csv(chosen),
        file_name=f"{stream['stream']}_events.csv", mime="text/csv", icon=":material/download:",
        key="download_csv",
    )
