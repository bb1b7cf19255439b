"""The Cells view (sidebar mode "Cells"): the cells of a structure image that ``serve``
analysed, read from the store — the field with ROI outlines coloured by structure score
(rejected ROIs dashed), the counts and warnings, a cell card, the chosen cell's Ca²⁺ events
and the per-cell table (the ``cells.csv`` columns). It refreshes itself, so a structure image
or a Ca²⁺ stream arriving while it is open shows up."""

from __future__ import annotations

import streamlit as st

from engine.cells.schema import CELL_COLUMNS
from ui.cells_data import FieldData, field_label, load_field, newest_fields
from ui.config import DashboardConfig
from ui.data import StoreReader, StoreUnavailable
from ui.plots_cells import field_figure
from ui.views.cell_card import cached_png, pick_cell, render_card, render_cell_calcium
from ui.views.cells import CELL_TABLE_COLUMNS
from ui.views.common import clock, count, guarded, number

NO_FIELD_HELP = """with Publisher("tcp://127.0.0.1:5555", stream="field-3-actinin") as pub:
    pub.start("image", "uint16", image.shape, pixel_um=0.15, field="field-3")
    pub.send(image)   # then Ca²⁺ streams that name field="field-3" are attributed to its cells"""


def load_fields(reader: StoreReader) -> tuple[list[dict], str | None]:
    """The newest structure result per field, or ``([], why not)``."""
    try:
        return newest_fields(reader.fields()), None
    except StoreUnavailable as exc:
        return [], (f"{exc} (or it was written by a castream without the cells tables, "
                    "store schema < v4)")


def pick_field(fields: list[dict]) -> dict | None:
    """The sidebar's field picker (newest first); the chosen ``fields`` row."""
    if not fields:
        st.sidebar.caption("No structure image in the store yet.")
        return None
    by_field = {row["field"]: row for row in fields}
    choice = st.sidebar.selectbox(
        "Field", list(by_field), key="cells_field",
        format_func=lambda f: f"{field_label(by_field[f])} · {clock(by_field[f]['t_s'])}",
        help="Fields whose structure image the engine analysed (the newest image of each).")
    return by_field[choice]


def render_cells_view(reader: StoreReader, config: DashboardConfig, field: str | None,
                      streams: list[dict]) -> None:
    """The body of the Cells view for ``field`` (re-read at every refresh)."""
    fields, problem = load_fields(reader)
    row = next((r for r in fields if r["field"] == field), None)
    if row is None:
        render_no_field(problem)
        return
    data = load_field(reader, row, streams, config.record_dir)
    render_field_header(data)
    left, right = st.columns([1.2, 1], gap="medium")
    with right, guarded("the cell card"):
        chosen = pick_cell(data)
        if chosen is not None:
            render_card(data, chosen)
    with left, guarded("the field image"):
        selected = None if chosen is None else int(chosen["cell_id"])
        st.image(_field_png(data, selected), width="stretch")
        st.caption(f"ROI outlines over the {data.image_source}; coloured by structure score, "
                   "rejected ROIs dashed grey; id: score at each centre.")
    if chosen is not None:
        with st.container(), guarded("the cell's Ca²⁺ events"):
            render_cell_calcium(data, chosen)
    with st.container(), guarded("the cell table"):
        render_cell_table(data)


def render_no_field(problem: str | None) -> None:
    """Waiting screen: no structure image analysed yet (or no cells tables)."""
    if problem:
        st.warning(f"**The store's cells cannot be read.** {problem}",
                   icon=":material/hourglass_empty:")
    else:
        st.info("**No structure image analysed yet.** Send one to `castream serve` (a stream "
                "in mode `image` naming a `field`); its cells appear here.",
                icon=":material/hourglass_empty:")
    st.code(NO_FIELD_HELP, language="python")


def render_field_header(data: FieldData) -> None:
    """Field title, where it came from, the counts and the analysis warnings."""
    row, summary = data.row, data.row.get("summary") or {}
    st.markdown(f"### Field {row['field']}")
    shape = " × ".join(str(n) for n in row.get("shape") or [])
    st.caption(f"structure image `{row['stream']}` · {shape} px · "
               f"{number(row['pixel_um'], 3, 'µm/px')} · ROIs from "
               f"{row.get('rois_from') or '—'} · analysed {clock(row['t_s'])} in "
               f"{number(summary.get('elapsed_s'), 1, 's')}")
    cells = data.cells
    accepted = cells[cells["is_cell"] == 1]
    columns = st.columns(6)
    columns[0].metric("Candidates", count(row.get("n_candidates")))
    columns[1].metric("Cells", count(row.get("n_cells")),
                      help="ROIs the curator accepted as true cells.")
    columns[2].metric("Rejected", count(len(cells) - len(accepted)))
    columns[3].metric("Mean score", number(summary.get("structure_score_mean"), 2))
    columns[4].metric("Median sarcomere", number(summary.get("sarcomere_length_um_median"), 2,
                                                 "µm"))
    columns[5].metric("Ca²⁺ events in cells", count(len(data.events)),
                      help="Events of the Ca²⁺ streams naming this field that lie in a cell.")
    streams = ", ".join(s["stream"] + (" (live)" if s.get("live") else "")
                        for s in data.ca_streams)
    st.caption(f"Ca²⁺ streams of this field: {streams}" if streams else
               f"No Ca²⁺ stream names field {row['field']} yet.")
    for warning in (summary.get("quality") or {}).get("warnings", []):
        st.warning(warning, icon=":material/warning:")


def render_cell_table(data: FieldData) -> None:
    """Every candidate ROI (``cells.csv`` columns + attributed events), and its CSV."""
    table = data.cells
    st.markdown(f"**Candidate ROIs** — {len(table)}, accepted cells first")
    columns = [c for c in (*CELL_COLUMNS, "n_events") if c in table]
    st.dataframe(table[columns], hide_index=True, key="cells_table", placeholder="—",
                 column_config={**CELL_TABLE_COLUMNS, "n_events": st.column_config.NumberColumn(
                     "Ca²⁺ events", format="%d", help="events attributed to this cell")},
                 height=min(400, 38 + 35 * max(1, len(table))))
    csv = table.sort_values("cell_id")[list(CELL_COLUMNS)].to_csv(index=False)
    st.download_button(f"Download cells.csv ({len(table)} ROIs)", csv.encode(),
                       file_name=f"{data.row['field']}_cells.csv", mime="text/csv",
                       icon=":material/download:", key="cells_csv")


def _field_png(data: FieldData, selected: int | None) -> bytes:
    """The field figure as PNG, redrawn only when the field, selection or backdrop change."""
    return cached_png(("field", data.row["id"], selected, data.image_source, len(data.cells)),
                      lambda: field_figure(data.labels, data.cells, data.pixel_um, data.image,
                                           selected))

