"""Cells of a structure image: what ``castream cells`` wrote to its output folder, shown as
the field with ROI outlines (``overview.png``: coloured by score, rejected dashed), the
counts and warnings of ``summary.json``, the per-cell table and a cell card. Display only:
every number comes from the folder. (The page's Cells view reads the store instead:
:mod:`ui.views.cells_page`; it shares :data:`CELL_TABLE_COLUMNS`.)"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from ui.views.common import guarded, number

CELL_TABLE_COLUMNS = {
    "cell_id": st.column_config.NumberColumn("id", format="%d"),
    "is_cell": st.column_config.CheckboxColumn("cell", help="accepted by the ROI curator"),
    "is_cell_proba": st.column_config.NumberColumn("P(cell)", format="%.2f"),
    "structure_score": st.column_config.NumberColumn("score (1–5)", format="%.2f"),
    "sarcomerisation": st.column_config.NumberColumn(
        "sarcom.", format="%d", help="sarcomerisation rating, 1–4 (AMES)"),
    "directionality": st.column_config.NumberColumn(
        "direct.", format="%d", help="directionality rating, 1–4 (AMES)"),
    "cell_source": st.column_config.TextColumn("source"),
    "sarcomere_length_um": st.column_config.NumberColumn("sarcomere (µm)", format="%.2f"),
    "orientation_order": st.column_config.NumberColumn(
        "orientation", format="%.2f", help="orientation order parameter, 0–1"),
    "area_um2": st.column_config.NumberColumn("area (µm²)", format="%.0f"),
    "aspect_ratio": st.column_config.NumberColumn("aspect", format="%.1f"),
    "x_um": st.column_config.NumberColumn("x (µm)", format="%.1f"),
    "y_um": st.column_config.NumberColumn("y (µm)", format="%.1f"),
}


def load_cells(folder: str | Path) -> tuple[pd.DataFrame, dict, Path | None]:
    """``cells.csv`` (cells first, by id), ``summary.json`` and ``overview.png`` if present."""
    folder = Path(folder)
    if not (folder / "cells.csv").is_file():
        raise FileNotFoundError(f"no cells.csv in {folder} (run castream cells first)")
    table = pd.read_csv(folder / "cells.csv")
    table = table.sort_values(["is_cell", "cell_id"], ascending=[False, True])
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    overview = folder / "overview.png"
    return table, summary, overview if overview.is_file() else None


def render_cells(folder: str | Path) -> None:
    """The whole cells section for one ``castream cells`` output folder."""
    with guarded("cells"):
        table, summary, overview = load_cells(folder)
        st.subheader("Cells from the structure image")
        counts = st.columns(4)
        counts[0].metric("candidates", summary.get("n_candidates", len(table)))
        counts[1].metric("cells", summary.get("n_cells", int(table["is_cell"].sum())))
        counts[2].metric("rejected", summary.get("n_rejected", int((table["is_cell"] == 0).sum())))
        counts[3].metric("median sarcomere", number(summary.get("sarcomere_length_um_median"),
                                                    2, " µm"))
        for warning in summary.get("quality", {}).get("warnings", []):
            st.warning(warning)
        if overview is not None:
            st.image(str(overview), caption="outlines coloured by score; rejected dashed")
        st.dataframe(table[[c for c in CELL_TABLE_COLUMNS if c in table]], hide_index=True,
                     column_config=CELL_TABLE_COLUMNS, placeholder="—", height=320)
        render_card(table)


def render_card(table: pd.DataFrame) -> None:
    """One accepted cell's numbers."""
    cells = table[table["is_cell"] == 1]
    if cells.empty:
        st.info("No ROI was accepted as a cell.")
        return
    chosen = st.selectbox("cell", cells["cell_id"].tolist(), key="cells_card")
    row = cells[cells["cell_id"] == chosen].iloc[0]
    card = st.columns(4)
    card[0].metric("score", number(row["structure_score"], 2))
    card[1].metric("sarcomere length", number(row["sarcomere_length_um"], 2, " µm"))
    card[2].metric("orientation order", number(row["orientation_order"], 2))
    card[3].metric("P(cell)", number(row["is_cell_proba"], 2))
    st.caption(f"source {row['cell_source']}, sarcomerisation {row['sarcomerisation']}, "
               f"directionality {row['directionality']}, area {number(row['area_um2'], 0)} µm²")
