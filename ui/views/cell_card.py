"""The cell card of the Cells view — one ROI's crop, structure numbers and pattern fractions —
and, below it, the cell's spark phenotype and Ca²⁺ events when a Ca²⁺ stream of the field was
attributed to it."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import streamlit as st
from matplotlib.figure import Figure

from engine.cells.explain import Explanation
from ui.cells_data import PATTERN_COLUMNS, FieldData
from ui.cells_explain import cell_explanation
from ui.plots import figure_bytes
from ui.plots_cells import crop_figure, explanation_figure
from ui.views.common import count, number
from ui.views.events import TABLE_COLUMNS as EVENT_COLUMNS_CONFIG

_PATTERN_NAMES = {
    "frac_background": "background", "frac_diffuse": "diffuse / other", "frac_fibres": "fibres",
    "frac_disorganized_puncta": "disorganized puncta",
    "frac_organized_puncta": "organized puncta", "frac_zdiscs": "organized Z-discs",
}
_EVENT_COLUMNS = ("stream", "event_id", "kind", "t_peak_ms", "x_um", "y_um", "amplitude_dff0",
                  "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms", "significance", "flags")


def cell_option(table: pd.DataFrame, cell_id: int) -> str:
    """``3 · cell · score 3.32`` / ``2 · rejected`` for the cell picker."""
    row = table[table["cell_id"] == cell_id].iloc[0]
    if not int(row["is_cell"]):
        return f"{cell_id} · rejected"
    return f"{cell_id} · cell · score {number(row['structure_score'], 2)}"


def pick_cell(data: FieldData) -> pd.Series | None:
    """The picker (accepted cells first, then rejected ROIs); the chosen row or None."""
    table = data.cells
    if table.empty:
        return None
    chosen = st.selectbox("Cell", table["cell_id"].tolist(), key=f"cell_{data.row['field']}",
                          format_func=lambda cell_id: cell_option(table, cell_id),
                          help="Accepted cells first, then the ROIs curation rejected.")
    return table[table["cell_id"] == chosen].iloc[0]


def render_card(data: FieldData, row: pd.Series) -> None:
    """The whole card for ROI ``row`` of ``data.cells``."""
    accepted = bool(int(row["is_cell"]))
    badge = ":green-badge[cell]" if accepted else ":gray-badge[rejected by curation]"
    st.markdown(f"**Cell card** — ROI {int(row['cell_id'])} {badge}")
    crop, numbers = st.columns([0.85, 1.15], gap="small")
    with crop:
        st.image(_crop_png(data, row), width="stretch")
    with numbers:
        render_structure(row)
    render_structure_captions(row)
    render_patterns(row)
    if accepted:
        render_explanation(data, row)


def render_structure(row: pd.Series) -> None:
    """Score, curation probability, sarcomere length and orientation order."""
    top = st.columns(2)
    top[0].metric("Score", number(row["structure_score"], 2),
                  help="Structure (sarcomere organisation) score, 1 (sparse puncta) to 5 "
                       "(aligned Z-discs).")
    top[1].metric("P(cell)", number(row["is_cell_proba"], 2),
                  help="The ROI curator's probability that this ROI is a true cell.")
    bottom = st.columns(2)
    bottom[0].metric("Sarcomere µm", number(row["sarcomere_length_um"], 2),
                     help="Sarcomere length (µm); empty when the image shows no periodic "
                          "Z-discs to measure it on.")
    bottom[1].metric("Orientation", number(row["orientation_order"], 2),
                     help="Orientation order parameter: 0 = no preferred direction, 1 = all "
                          "myofibrils aligned.")


def render_structure_captions(row: pd.Series) -> None:
    """The classes, size and position of the ROI."""
    if int(row["is_cell"]):
        st.caption(f"sarcomerisation **{_rating(row['sarcomerisation'])}** · directionality "
                   f"**{_rating(row['directionality'])}** · source "
                   f"**{_text(row['cell_source'])}** · area {number(row['area_um2'], 0, 'µm²')}"
                   f" · aspect {number(row['aspect_ratio'], 1)} · centre "
                   f"({number(row['x_um'], 1)}, {number(row['y_um'], 1)}) µm")
    else:
        st.caption(f"Rejected by the ROI curator: its structure is not measured. Area "
                   f"{number(row['area_um2'], 0, 'µm²')} · aspect "
                   f"{number(row['aspect_ratio'], 1)} · centre ({number(row['x_um'], 1)}, "
                   f"{number(row['y_um'], 1)}) µm")


def render_patterns(row: pd.Series) -> None:
    """The six local-pattern area fractions, as bars (absent when not stored)."""
    fractions = pd.DataFrame({"pattern": [_PATTERN_NAMES[c] for c in PATTERN_COLUMNS],
                              "fraction": [row.get(c) for c in PATTERN_COLUMNS]})
    if pd.to_numeric(fractions["fraction"], errors="coerce").isna().all():
        return
    st.dataframe(fractions, hide_index=True, width="stretch", key="cell_patterns",
                 column_config={"fraction": st.column_config.ProgressColumn(
                     "area fraction", min_value=0.0, max_value=1.0, format="percent")})


def render_explanation(data: FieldData, row: pd.Series) -> None:
    """The occlusion map of the cell's score, computed when the user asks for it."""
    cell_id = int(row["cell_id"])
    with st.expander("Explanation: what the score rests on (occlusion map)"):
        if data.image is None:
            st.caption(f"Needs the structure image: the view shows the {data.image_source}.")
            return
        if not st.toggle("Compute the occlusion map", key=f"explain_{data.row['id']}_{cell_id}",
                         help="Hides squares of about 2.5 µm (larger in a large cell) one at "
                              "a time and re-scores the cell; seconds per cell, then kept."):
            return
        with st.spinner("Occluding and re-scoring the cell…"):
            png, explanation = _explanation_png(data, row)
        st.image(png, width="stretch")
        st.caption(f"Red: hiding these pixels lowers the organisation estimate "
                   f"({number(explanation.estimate, 2)}), i.e. they support the score; blue: "
                   f"hiding them raises it. {explanation.n_occlusions} squares of "
                   f"{number(explanation.patch_px * data.pixel_um, 1, 'µm')}; shows what this "
                   f"model reacts to, not where the cell is organised.")


def render_cell_calcium(data: FieldData, row: pd.Series) -> None:
    """The chosen cell's spark phenotype and its attributed Ca²⁺ events (full width)."""
    cell_id = int(row["cell_id"])
    st.markdown(f"**Cell {cell_id} — Ca²⁺**")
    render_phenotype(data, cell_id)
    render_cell_events(data, cell_id)


def render_phenotype(data: FieldData, cell_id: int) -> None:
    """The cell's spark phenotype from each Ca²⁺ stream that finished, or why there is none."""
    rows = data.phenotypes
    rows = rows[rows["cell_id"] == cell_id] if not rows.empty else rows
    for _, phenotype in rows.iterrows():
        render_phenotype_row(phenotype)
    running = [s["stream"] for s in data.ca_streams if s.get("live")]
    n_events = int((data.events["cell_id"] == cell_id).sum()) if not data.events.empty else 0
    if running:
        st.caption(f"Ca²⁺ stream {', '.join(running)} running: {n_events} events of this cell "
                   "so far; its spark phenotype is stored when the stream stops.")
    elif rows.empty and data.ca_streams:
        st.caption("No spark phenotype: only accepted cells get one.")
    elif rows.empty:
        st.caption(f"No Ca²⁺ stream of field {data.row['field']} yet.")


def render_phenotype_row(row: pd.Series) -> None:
    """One stream's per-cell summary: counts, rate, medians and the cell's own vote."""
    if pd.notna(row.get("sparks_per_100um_s")):
        rate_label, rate = "Sparks /100 µm/s", row["sparks_per_100um_s"]
    else:
        rate_label, rate = "Sparks /100 µm²/s", row["sparks_per_100um2_s"]
    columns = st.columns([1.5, 1.4, 2.0, 0.9, 1, 1, 0.9, 0.9])
    columns[0].metric("Sparks · puffs · waves", " · ".join(
        count(row[k]) for k in ("n_sparks", "n_puffs", "n_waves")))
    columns[1].metric(rate_label, number(rate, 2))
    columns[2].metric("Spark vote", str(row.get("label") or "—").upper(),
                      help="WT / CPVT-like vote of this cell's sparks alone; 'undecided' below "
                           "80 % confidence.")
    for column, (key, label, digits) in zip(columns[3:], (
            ("amplitude_dff0", "ΔF/F0", 2), ("fwhm_um", "FWHM µm", 2), ("fdhm_ms", "FDHM ms", 0),
            ("rise_ms", "Rise ms", 0), ("t50_ms", "t50 ms", 0)), strict=True):
        column.metric(label, number(row[key], digits), help="median of the cell's sparks")
    st.caption(f"spark phenotype from stream **{row['stream']}** · "
               f"{number(row['spark_rate_hz'], 2, 'sparks/s')} · vote confidence "
               f"{number(100 * _float(row.get('confidence')), 0, '%')}")


def render_cell_events(data: FieldData, cell_id: int) -> None:
    """The Ca²⁺ events attributed to the cell, by stream, newest first."""
    events = data.events[data.events["cell_id"] == cell_id] if not data.events.empty else None
    if events is None or events.empty:
        if data.ca_streams:
            st.caption("No Ca²⁺ event attributed to this ROI.")
        return
    shown = events.sort_values(["stream", "t_peak_ms"], ascending=[True, False])
    st.dataframe(shown[[c for c in _EVENT_COLUMNS if c in shown]], hide_index=True,
                 key="cell_events", placeholder="—", height=min(320, 38 + 35 * len(shown)),
                 column_config={**EVENT_COLUMNS_CONFIG,
                                "stream": st.column_config.TextColumn("stream")})


def cached_png(key: tuple, draw: Callable[[], Figure]) -> bytes:
    """``draw()`` as PNG, drawn once per ``key`` in this session (the newest 16 kept)."""
    cache = st.session_state.setdefault("cells_png", {})
    if key not in cache:
        cache[key] = figure_bytes(draw(), fmt="png", dpi=100)
        while len(cache) > 16:
            cache.pop(next(iter(cache)))
    return cache[key]


def _crop_png(data: FieldData, row: pd.Series) -> bytes:
    return cached_png(("crop", data.row["id"], int(row["cell_id"]), data.image_source),
                      lambda: crop_figure(data.labels, row, data.pixel_um, data.image))


def _explanation_png(data: FieldData, row: pd.Series) -> tuple[bytes, Explanation]:
    explanation = cell_explanation(data, int(row["cell_id"]))
    png = cached_png(("explain", data.row["id"], int(row["cell_id"]), data.image_source),
                     lambda: explanation_figure(data.labels, row, data.pixel_um, data.image,
                                                explanation))
    return png, explanation


def _rating(value) -> str:
    return f"{int(value)}/4" if pd.notna(value) else "—"


def _text(value) -> str:
    return str(value) if isinstance(value, str) and value else "—"


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
