"""``overview.png``: the field with ROI outlines coloured by structure score (rejected ROIs
dashed grey), ids and a score colour bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .analyze import CellsResult


def write_overview(path: str | Path, plane: np.ndarray, result: CellsResult,
                   max_side_px: int = 1400) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors, patheffects

    step = max(1, int(np.ceil(max(plane.shape) / max_side_px)))
    shown, labels = plane[::step, ::step], result.labels[::step, ::step]
    lo, hi = np.percentile(shown, [1, 99.7])
    fig, ax = plt.subplots(figsize=(10, 10 * shown.shape[0] / shown.shape[1] + 0.6))
    ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi)
    norm = colors.Normalize(1, 5)
    cmap = matplotlib.colormaps["viridis"]
    pixel_um = result.summary.get("pixel_um", 1.0)
    for row in result.rows:
        mask = labels == row["cell_id"]
        if not mask.any():
            continue
        accepted = bool(row["is_cell"])
        colour = cmap(norm(row["structure_score"])) if accepted else (0.7, 0.7, 0.7, 1)
        ax.contour(mask, [0.5], colors=[colour], linewidths=1.5 if accepted else 1.0,
                   linestyles="solid" if accepted else "dashed")
        text = (f"{row['cell_id']}: {row['structure_score']:.1f}" if accepted
                else f"{row['cell_id']} ({row['is_cell_proba']:.2f})")
        ax.text(row["x_um"] / pixel_um / step, row["y_um"] / pixel_um / step, text,
                color=colour, fontsize=8, ha="center", va="center",
                path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03,
                 label="structure score (1–5); dashed = rejected (curation probability)")
    ax.set_title(f"{result.summary.get('n_cells', 0)} cells of "
                 f"{result.summary.get('n_candidates', 0)} candidates")
    ax.set_axis_off()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
