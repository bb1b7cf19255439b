"""``castream cells --explain``: the occlusion map of every accepted cell
(:mod:`engine.cells.explain`) as ``explain/cell_<id>.png`` and ``explain/maps.npz``.

``maps.npz`` holds, per explained cell, ``cell_<id>`` (float32 map of the score change in
score units on the cell's window, NaN outside the ROI) and ``cell_<id>_box`` (the window's
``y0, y1, x0, x1`` in field pixels), plus ``cell_ids``, ``estimates`` (unoccluded
organisation estimates), ``structure_scores``, ``n_occlusions``, ``patch_px``, ``stride_px``
(one entry per cell, in ``cell_ids`` order) and ``pixel_um``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .analyze import CellsResult
from .explain import MAX_OCCLUSIONS, PATCH_UM, Explanation, explain_cell
from .features import field_levels
from .model import CellsModel

log = logging.getLogger(__name__)


def explain_field(plane: np.ndarray, result: CellsResult, model: CellsModel,
                  patch_um: float = PATCH_UM, max_occlusions: int = MAX_OCCLUSIONS,
                  progress: bool = True) -> list[Explanation]:
    """The occlusion map of every accepted cell of ``result`` (analysed on ``plane``)."""
    from tqdm import tqdm

    pixel_um = float(result.summary["pixel_um"])
    levels = field_levels(plane, result.labels)
    cells = [row for row in result.rows if row["is_cell"]]
    return [explain_cell(plane, result.labels, row["cell_id"], pixel_um, model, patch_um,
                         max_occlusions, levels)
            for row in tqdm(cells, unit="cell", desc="explain", disable=not progress)]


def write_explanations(out_dir: str | Path, plane: np.ndarray, result: CellsResult,
                       explanations: list[Explanation]) -> Path:
    """``out_dir/explain/cell_<id>.png`` and ``maps.npz``; returns the folder."""
    folder = Path(out_dir) / "explain"
    folder.mkdir(parents=True, exist_ok=True)
    rows = {row["cell_id"]: row for row in result.rows}
    pixel_um = float(result.summary["pixel_um"])
    for explanation in explanations:
        figure = explanation_figure(plane, result.labels, explanation,
                                    rows[explanation.cell_id]["structure_score"], pixel_um)
        figure.savefig(folder / f"cell_{explanation.cell_id}.png", dpi=100)
    np.savez_compressed(folder / "maps.npz", **_arrays(explanations, rows, pixel_um))
    log.info("occlusion maps of %d cells -> %s", len(explanations), folder)
    return folder


def _arrays(explanations: list[Explanation], rows: dict[int, dict],
            pixel_um: float) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"pixel_um": np.float64(pixel_um)}
    for item in explanations:
        arrays[f"cell_{item.cell_id}"] = item.change
        arrays[f"cell_{item.cell_id}_box"] = np.array(
            [item.box[0].start, item.box[0].stop, item.box[1].start, item.box[1].stop])
    columns = {"cell_ids": "cell_id", "estimates": "estimate", "n_occlusions": "n_occlusions",
               "patch_px": "patch_px", "stride_px": "stride_px"}
    for key, attribute in columns.items():
        arrays[key] = np.array([getattr(item, attribute) for item in explanations])
    arrays["structure_scores"] = np.array([rows[item.cell_id]["structure_score"]
                                           for item in explanations], np.float64)
    return arrays


def explanation_figure(plane: np.ndarray, labels: np.ndarray, explanation: Explanation,
                       score: float, pixel_um: float):
    """Two panels on the cell's window: the structure image with the ROI outline, and the
    same with the occlusion map over it (red: hiding it lowers the score, blue: raises it)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    box = explanation.box
    image = plane[box]
    mask = labels[box] == explanation.cell_id
    low, high = np.percentile(image[mask], [1.0, 99.7]) if mask.any() else (0.0, 1.0)
    peak = explanation.peak
    extent = ((box[1].start - 0.5) * pixel_um, (box[1].stop - 0.5) * pixel_um,
              (box[0].stop - 0.5) * pixel_um, (box[0].start - 0.5) * pixel_um)
    fig = Figure(figsize=(9.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-6), extent=extent,
                  interpolation="nearest")
        ax.contour(np.arange(box[1].start, box[1].stop) * pixel_um,
                   np.arange(box[0].start, box[0].stop) * pixel_um, mask.astype(float), [0.5],
                   colors=["yellow"], linewidths=1.2)
        ax.set_xlabel("x (µm)")
    shown = axes[1].imshow(explanation.change, cmap=colormaps["RdBu_r"], vmin=-peak,
                           vmax=peak, alpha=0.6, extent=extent, interpolation="nearest")
    axes[0].set_ylabel("y (µm)")
    axes[0].set_title(f"cell {explanation.cell_id} · score {score:.2f}")
    axes[1].set_title(f"occlusion: {explanation.n_occlusions} squares of "
                      f"{explanation.patch_px * pixel_um:.1f} µm")
    fig.colorbar(shown, ax=axes[1], shrink=0.85,
                 label="estimate change when hidden (score units)")
    fig.suptitle(f"red: this part raises the score (organisation estimate "
                 f"{explanation.estimate:.2f})", fontsize=9)
    return fig
