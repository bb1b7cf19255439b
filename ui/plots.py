"""Matplotlib figures for the dashboard: preview image with event overlay, histograms.

Pure display code: it draws what the engine measured and never measures anything itself.
Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so they are safe
in Streamlit's script threads.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle

#: Colour per event kind (bright on the grey image).
KIND_COLORS: dict[str, str] = {"spark": "#00e5ff", "puff": "#ffd400", "wave": "#ff4fa3"}

#: Histogram panels: column, axis label.
HISTOGRAM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("amplitude_dff0", "amplitude ΔF/F0"),
    ("fwhm_um", "FWHM (µm)"),
    ("fdhm_ms", "FDHM (ms)"),
    ("rise_ms", "rise (ms)"),
    ("t50_ms", "t50 (ms)"),
)


def _robust_limits(image: np.ndarray) -> tuple[float, float]:
    """Display limits (1st/99.5th percentile of finite values) so noise does not wash out."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1.0, 99.5])
    return float(low), float(max(high, low + 1e-6))


def figure_bytes(fig: Figure, fmt: str = "jpeg", dpi: int = 100) -> bytes:
    """Render ``fig`` to image bytes (JPEG by default: ~4× smaller than PNG for noisy images)."""
    buffer = io.BytesIO()
    options = {"pil_kwargs": {"quality": 88}} if fmt == "jpeg" else {}
    fig.savefig(buffer, format=fmt, dpi=dpi, **options)
    return buffer.getvalue()


def bin_rows(image: np.ndarray, max_rows: int) -> np.ndarray:
    """Average consecutive rows so that at most ``max_rows`` remain (NaN rows ignored)."""
    factor = -(-image.shape[0] // max_rows)
    if factor <= 1:
        return image
    n_rows = image.shape[0] // factor * factor
    blocks = image[:n_rows].reshape(n_rows // factor, factor, *image.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=1)


def _image_axes(fig: Figure, with_colorbar: bool):
    """Fixed axes placement (much faster than a constrained layout at every refresh)."""
    height_in = fig.get_figheight()
    bottom, top = 0.5 / height_in, 1.0 - 0.12 / height_in
    right = 0.895 if with_colorbar else 0.98
    ax = fig.add_axes((0.075, bottom, right - 0.075, top - bottom))
    cax = fig.add_axes((0.91, bottom, 0.012, top - bottom)) if with_colorbar else None
    return ax, cax


def kymograph_figure(
    lines: np.ndarray | None,
    t_range_ms: tuple[float, float],
    x_extent_um: float,
    events: pd.DataFrame,
) -> Figure:
    """Line-scan preview ``(T, X)`` with time left→right and events boxed by kind.

    ``lines`` (ΔF/F0, NaN rows = not received) spans ``t_range_ms`` and ``0..x_extent_um``;
    without it only the events are drawn. Each event is a box from ``t_start_ms`` to
    ``t_end_ms`` and ``x_um ± fwhm_um / 2``.
    """
    t0_ms, t1_ms = t_range_ms
    fig = Figure(figsize=(9.0, 4.0))
    ax, cax = _image_axes(fig, lines is not None)
    if lines is not None:
        lines = bin_rows(lines, 900)
        low, high = _robust_limits(lines)
        image = ax.imshow(
            lines.T, cmap="gray", vmin=low, vmax=high, aspect="auto", origin="lower",
            extent=(t0_ms, t1_ms, 0.0, x_extent_um), interpolation="nearest",
        )
        fig.colorbar(image, cax=cax, label="ΔF/F0")
    else:
        ax.set_facecolor("0.12")
    visible = events[(events["t_end_ms"] >= t0_ms) & (events["t_start_ms"] <= t1_ms)]
    min_width_ms = (t1_ms - t0_ms) / 400.0
    for row in visible.itertuples(index=False):
        half_um = _finite_or(row.fwhm_um, 2.0) / 2.0
        ax.add_patch(Rectangle(
            (row.t_start_ms, row.x_um - half_um), max(row.t_end_ms - row.t_start_ms, min_width_ms),
            2.0 * half_um, fill=False, linewidth=1.2, edgecolor=KIND_COLORS.get(row.kind, "w"),
        ))
    ax.set_xlim(t0_ms, t1_ms)
    ax.set_ylim(0.0, x_extent_um)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("x (µm)")
    _kind_legend(ax, visible)
    return fig


def frame_figure(
    frame: np.ndarray | None,
    t_ms: float,
    extent_um: tuple[float, float],
    events: pd.DataFrame,
    recent_ms: float = 500.0,
) -> Figure:
    """Movie preview: one frame ``(Y, X)`` (ΔF/F0) spanning ``extent_um = (y, x)``, with the
    events of the last ``recent_ms`` circled by kind (without a frame, only the events)."""
    y_um, x_um = extent_um
    fig = Figure(figsize=(9.0, min(6.0, max(2.4, 7.5 * y_um / max(x_um, 1e-6) + 0.7))))
    ax, cax = _image_axes(fig, frame is not None)
    if frame is not None:
        low, high = _robust_limits(frame)
        image = ax.imshow(
            frame, cmap="gray", vmin=low, vmax=high, origin="upper", interpolation="nearest",
            extent=(0.0, x_um, y_um, 0.0), aspect="auto",
        )
        fig.colorbar(image, cax=cax, label="ΔF/F0")
    else:
        ax.set_facecolor("0.12")
    ax.set_xlim(0.0, x_um)
    ax.set_ylim(y_um, 0.0)
    recent = events[(events["t_end_ms"] >= t_ms - recent_ms) & (events["t_start_ms"] <= t_ms)]
    for row in recent.itertuples(index=False):
        size_um = _finite_or(row.fwhm_um, 2.0)
        y_um = _finite_or(row.y_um, 0.0)
        ax.add_patch(Ellipse(
            (row.x_um, y_um), size_um, size_um, fill=False, linewidth=1.2,
            edgecolor=KIND_COLORS.get(row.kind, "w"),
        ))
    ax.text(0.99, 0.96, f"t = {t_ms / 1000.0:.2f} s", transform=ax.transAxes, va="top",
            ha="right", color="w", fontsize=9,
            bbox={"facecolor": "0.1", "alpha": 0.6, "linewidth": 0})
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    _kind_legend(ax, recent)
    return fig


def histograms_figure(events: pd.DataFrame, bins: int | None = None) -> Figure:
    """One small histogram per event parameter, stacked by kind (default bins: 5..25,
    growing with the number of events)."""
    if bins is None:
        bins = int(np.clip(np.sqrt(len(events)) * 1.5, 5, 25))
    fig = Figure(figsize=(12.0, 2.3), layout="constrained")
    axes = fig.subplots(1, len(HISTOGRAM_COLUMNS))
    for ax, (column, label) in zip(axes, HISTOGRAM_COLUMNS, strict=True):
        _stacked_histogram(ax, events, column, bins)
        ax.set_xlabel(label, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("events", fontsize=9)
    _kind_legend(axes[-1], events, location="upper right")
    return fig


def _stacked_histogram(ax, events: pd.DataFrame, column: str, bins: int) -> None:
    values = pd.to_numeric(events.get(column, pd.Series(dtype=float)), errors="coerce")
    finite = values[np.isfinite(values)]
    if finite.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                color="0.5", fontsize=9)
        ax.set_yticks([])
        return
    # a few outliers must not squash the rest; the bounds are values of the data, so the
    # smallest and largest of a few events (two FWHMs) are kept, not interpolated away
    low = np.percentile(finite, 0.5, method="lower")
    high = np.percentile(finite, 99.5, method="higher")
    finite = finite[(finite >= low) & (finite <= high)]
    if high - low <= 1e-9 * max(1.0, abs(low)):  # one value: a readable range around it
        pad = 0.05 * abs(low) if low else 0.5
        low, high = low - pad, high + pad
    edges = np.histogram_bin_edges(finite, bins=bins, range=(low, high))
    ax.ticklabel_format(axis="x", useOffset=False)
    groups = [(kind, finite[events.loc[finite.index, "kind"] == kind]) for kind in KIND_COLORS]
    groups = [(kind, data) for kind, data in groups if not data.empty]
    ax.hist(
        [data.to_numpy() for _, data in groups], bins=edges, stacked=True,
        color=[KIND_COLORS[kind] for kind, _ in groups], edgecolor="0.3", linewidth=0.3,
    )


def _kind_legend(ax, events: pd.DataFrame, location: str = "upper left") -> None:
    kinds = [kind for kind in KIND_COLORS if (events["kind"] == kind).any()]
    if not kinds:
        return
    handles = [Rectangle((0, 0), 1, 1, facecolor=KIND_COLORS[k], edgecolor="0.3") for k in kinds]
    ax.legend(handles, kinds, loc=location, fontsize=8, framealpha=0.6)


def _finite_or(value: float, default: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default
