"""Figures of the Cells view: the field with ROI outlines, and one cell's crop.

Outlines are coloured by the engine's structure score (blue 1 → red 5; accepted ROIs without a
score white), rejected ROIs are dashed grey. Behind them is the recorded structure image
when the dashboard found it, else the label image (ROIs grey on black). Coordinates are in
µm with sample i at i × pixel_um, as in ``cells.csv``. Display only, like :mod:`ui.plots`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps, colors, patheffects
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

SCORE_NORM = colors.Normalize(1.0, 5.0)
#: turbo without its darkest ends: every score stays visible on a dark image and on grey
SCORE_CMAP = colors.ListedColormap(colormaps["turbo"](np.linspace(0.1, 0.9, 256)),
                                   name="score")
REJECTED_COLOR = (0.78, 0.78, 0.78, 1.0)
NO_SCORE_COLOR = (1.0, 1.0, 1.0, 1.0)
#: the field is drawn at most this many pixels on its longer side
MAX_SIDE_PX = 1000
_HALO = [patheffects.withStroke(linewidth=2.5, foreground="black")]


def roi_color(row) -> tuple:
    """Outline colour of one ROI: its score's colour, white without one, grey if rejected."""
    if not int(row["is_cell"]):
        return REJECTED_COLOR
    score = float(row["structure_score"]) if pd.notna(row["structure_score"]) else math.nan
    return SCORE_CMAP(SCORE_NORM(score)) if math.isfinite(score) else NO_SCORE_COLOR


def roi_text(row) -> str:
    """``3: 3.3`` (id: score), ``3`` (accepted, no score) or ``2 rejected``."""
    if not int(row["is_cell"]):
        return f"{int(row['cell_id'])} rejected"
    score = row["structure_score"]
    return f"{int(row['cell_id'])}" + (f": {score:.1f}" if pd.notna(score) else "")


def _backdrop(image: np.ndarray | None, labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """What is drawn behind the outlines, with its display limits."""
    if image is None:
        return (labels > 0).astype(np.float32) * 0.35, 0.0, 1.0
    low, high = np.percentile(image, [1.0, 99.7])
    return image, float(low), float(max(high, low + 1e-6))


def _outline(ax, labels: np.ndarray, cell_id: int, pixel_um: float, box: tuple[slice, slice],
             **style) -> None:
    """The contour of ROI ``cell_id`` inside ``box`` (row/column slices), in µm."""
    from skimage.measure import find_contours

    mask = np.pad(labels[box] == cell_id, 1)
    for contour in find_contours(mask.astype(np.float32), 0.5):
        y = (contour[:, 0] - 1 + box[0].start) * pixel_um
        x = (contour[:, 1] - 1 + box[1].start) * pixel_um
        ax.plot(x, y, **style)


def _extent(shape: tuple[int, int], pixel_um: float) -> tuple[float, float, float, float]:
    return (-0.5 * pixel_um, (shape[1] - 0.5) * pixel_um, (shape[0] - 0.5) * pixel_um,
            -0.5 * pixel_um)


def field_figure(labels: np.ndarray, cells: pd.DataFrame, pixel_um: float,
                 image: np.ndarray | None = None, selected: int | None = None) -> Figure:
    """The field, every ROI outlined (the ``selected`` one thicker) with its id and score."""
    from scipy import ndimage

    step = max(1, math.ceil(max(labels.shape) / MAX_SIDE_PX))
    backdrop, low, high = _backdrop(None if image is None else image[::step, ::step],
                                    labels[::step, ::step])
    height, width = labels.shape
    fig = Figure(figsize=(7.0, 6.2 * height / width + 0.6), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(backdrop, cmap="gray", vmin=low, vmax=high, interpolation="nearest",
              extent=_extent(labels.shape, pixel_um))
    boxes = ndimage.find_objects(labels)
    for _, row in cells.iterrows():
        cell_id = int(row["cell_id"])
        if cell_id > len(boxes) or boxes[cell_id - 1] is None:
            continue
        accepted, chosen = bool(int(row["is_cell"])), cell_id == selected
        color = roi_color(row)
        _outline(ax, labels, cell_id, pixel_um, boxes[cell_id - 1], color=color,
                 linewidth=3.0 if chosen else 1.6 if accepted else 1.2,
                 linestyle="-" if accepted else (0, (4, 3)))
        box = boxes[cell_id - 1]
        # rejected ROIs are mostly small: their label goes under them, not over them
        y_um = row["y_um"] if accepted else (box[0].stop + 2) * pixel_um
        ax.text(row["x_um"], y_um, roi_text(row), color="white", ha="center",
                va="center" if accepted else "top", fontsize=12 if chosen else 10,
                fontweight="bold" if chosen else "normal", path_effects=_HALO)
    ax.set_xlim(-0.5 * pixel_um, (width - 0.5) * pixel_um)
    ax.set_ylim((height - 0.5) * pixel_um, -0.5 * pixel_um)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    fig.colorbar(ScalarMappable(norm=SCORE_NORM, cmap=SCORE_CMAP), ax=ax, shrink=0.8,
                 label="structure score (1–5) · dashed grey = rejected")
    return fig


def crop_figure(labels: np.ndarray, row, pixel_um: float, image: np.ndarray | None = None,
                margin: float = 0.2, min_side_um: float = 12.0) -> Figure:
    """One ROI's surroundings with its outline and a 5 µm scale bar."""
    cell_id = int(row["cell_id"])
    rows, cols = np.nonzero(labels == cell_id)
    fig = Figure(figsize=(3.2, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    if rows.size == 0:
        ax.text(0.5, 0.5, "ROI not in the label image", ha="center", va="center")
        return fig
    box = _crop_box(rows, cols, labels.shape, pixel_um, margin, min_side_um)
    backdrop, low, high = _backdrop(None if image is None else image[box], labels[box])
    origin = (box[0].start, box[1].start)
    ax.imshow(backdrop, cmap="gray", vmin=low, vmax=high, interpolation="nearest",
              extent=_crop_extent(box, pixel_um))
    _outline(ax, labels, cell_id, pixel_um, box, color=roi_color(row), linewidth=2.0,
             linestyle="-" if int(row["is_cell"]) else (0, (4, 3)))
    bar_y = (origin[0] + (box[0].stop - box[0].start) * 0.93) * pixel_um
    bar_x = (origin[1] + (box[1].stop - box[1].start) * 0.05) * pixel_um
    ax.plot([bar_x, bar_x + 5.0], [bar_y, bar_y], color="white", linewidth=3,
            path_effects=_HALO)
    ax.text(bar_x + 2.5, bar_y, "5 µm", color="white", ha="center", va="bottom",
            fontsize=8, path_effects=_HALO)
    return fig


def explanation_figure(labels: np.ndarray, row, pixel_um: float, image: np.ndarray,
                       explanation) -> Figure:
    """:func:`crop_figure` with the occlusion map of :mod:`engine.cells.explain` over the
    cell (red: hiding these pixels lowers the organisation estimate, blue: raises it)."""
    fig = crop_figure(labels, row, pixel_um, image)
    ax = fig.axes[0]
    limits = ax.get_xlim(), ax.get_ylim()
    peak = explanation.peak
    shown = ax.imshow(explanation.change, cmap="RdBu_r", vmin=-peak, vmax=peak, alpha=0.6,
                      interpolation="nearest", extent=_crop_extent(explanation.box, pixel_um))
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    bar = fig.colorbar(shown, ax=ax, shrink=0.7, fraction=0.06)
    bar.set_label("estimate change when hidden", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return fig


def _crop_box(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], pixel_um: float,
              margin: float, min_side_um: float) -> tuple[slice, slice]:
    """A square window around the ROI's bounding box, clipped to the image."""
    side = max(np.ptp(rows) + 1, np.ptp(cols) + 1) * (1 + 2 * margin)
    side = int(max(side, min_side_um / pixel_um))
    centre = ((rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2)
    return tuple(slice(max(0, c - side // 2), min(n, c - side // 2 + side))
                 for c, n in zip(centre, shape, strict=True))


def _crop_extent(box: tuple[slice, slice], pixel_um: float) -> tuple[float, ...]:
    return ((box[1].start - 0.5) * pixel_um, (box[1].stop - 0.5) * pixel_um,
            (box[0].stop - 0.5) * pixel_um, (box[0].start - 0.5) * pixel_um)
