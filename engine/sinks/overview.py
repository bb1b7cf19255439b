"""``overview.png`` of an analyzed recording: where the events are, and which can be trusted.

* Line-scan: the x-t image (time down, binned to at most :data:`MAX_ROWS` rows) with each
  event's peak marked.
* Movie: the temporal maximum of the raw frames beside their mean, with each event's peak
  position marked.

Markers: colour by kind (spark, puff, wave); a filled marker is an event whose five parameters
were all measured, a hollow one has flags (saturated, below resolution, ...). The title carries
the quality report's key figures. :class:`OverviewImage` accumulates what it needs chunk by
chunk, so a long recording is never held in memory.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from acquisition.stream_kind import StreamKind
from engine.events import Event

MAX_ROWS = 2000
KIND_COLOURS = {"spark": "#e6194b", "puff": "#f58231", "wave": "#4363d8"}


class OverviewImage:
    """Chunk-wise summary images of a recording ``(T, X)`` or ``(T, Y, X)``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)
        self.linescan = StreamKind.from_item_shape(self.shape[1:]).is_linescan
        n = shape[0]
        self.bin = max(1, math.ceil(n / MAX_ROWS)) if self.linescan else 1
        if self.linescan:
            self.rows = np.zeros((math.ceil(n / self.bin), shape[1]), np.float64)
            self.counts = np.zeros(self.rows.shape[0], np.int64)
        else:
            self.sum = np.zeros(shape[1:], np.float64)
            self.max = np.full(shape[1:], -np.inf)
            self.n = 0

    def add(self, first: int, frames: np.ndarray) -> None:
        """Frames ``first .. first+len-1`` of the raw recording."""
        frames = np.asarray(frames, np.float64)
        if self.linescan:
            index = (first + np.arange(frames.shape[0])) // self.bin
            np.add.at(self.rows, index, frames)
            np.add.at(self.counts, index, 1)
        else:
            self.sum += frames.sum(axis=0)
            self.max = np.maximum(self.max, frames.max(axis=0))
            self.n += frames.shape[0]

    def write(self, path: str | Path, events: list[Event], pixel_um: float, dt_ms: float,
              title: str = "") -> Path:
        """Draw and save the overview PNG; returns its path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if self.linescan:
            fig, ax = plt.subplots(figsize=(8, 8))
            image = self.rows / np.maximum(self.counts, 1)[:, None]
            extent = (0, self.shape[1] * pixel_um, self.shape[0] * dt_ms, 0)
            ax.imshow(image, aspect="auto", cmap="gray", extent=extent, interpolation="nearest")
            _mark(ax, events, lambda e: (e.x_um, e.t_peak_ms))
            ax.set_xlabel("x (µm)")
            ax.set_ylabel("time (ms)")
        else:
            fig, axes = _movie_axes(plt, self.shape[1], self.shape[2])
            extent = (0, self.shape[2] * pixel_um, self.shape[1] * pixel_um, 0)
            mean = self.sum / max(self.n, 1)
            for ax, image, name in ((axes[0], self.max, "maximum over time"),
                                    (axes[1], mean, "mean over time")):
                ax.imshow(image, cmap="gray", extent=extent, interpolation="nearest")
                ax.set_title(name, fontsize=9)
            _mark(axes[0], events, lambda e: (e.x_um, e.y_um))
            for ax in axes:
                if ax.get_subplotspec().is_first_col():
                    ax.set_ylabel("y (µm)")
                if ax.get_subplotspec().is_last_row():
                    ax.set_xlabel("x (µm)")
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return Path(path)


def _movie_axes(plt, height_px: int, width_px: int):
    """The two movie panels stacked for a wide field, side by side for a tall one, in a
    figure shaped to the field (so neither wastes most of the page)."""
    aspect = height_px / max(width_px, 1)
    if aspect >= 0.75:
        size = (10.0, float(np.clip(5.0 * aspect + 1.4, 4.0, 9.0)))
        return plt.subplots(1, 2, figsize=size, sharey=True)
    size = (10.0, float(np.clip(2 * 10.0 * aspect + 1.8, 4.0, 9.0)))
    return plt.subplots(2, 1, figsize=size, sharex=True)


def _mark(ax, events: list[Event], position) -> None:
    """Event peaks: colour by kind, filled when fully measured, hollow when flagged."""
    for kind, colour in KIND_COLOURS.items():
        for measured in (True, False):
            chosen = [e for e in events if e.kind == kind
                      and (not e.flags or "significance_unknown" == e.flags) == measured]
            if not chosen:
                continue
            xy = np.array([position(e) for e in chosen], float)
            ax.scatter(xy[:, 0], xy[:, 1], s=28, marker="o", linewidths=1.2,
                       facecolors=colour if measured else "none", edgecolors=colour,
                       label=f"{kind} ({'measured' if measured else 'flagged'}): {len(chosen)}")
    if events:
        ax.legend(fontsize=7, loc="upper right", framealpha=0.7)
