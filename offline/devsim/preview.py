"""Plausibility check of the development set: a picture and the parameter distributions.

``python -m offline.devsim.preview --out /tmp/devsim_preview.png --n 12`` draws one line-scan
and one movie frame with the ground-truth contours, and prints, per subtype, the median and
10–90 % range of amplitude, FWHM, FDHM, rise and t50 over ``n`` line-scans (measured on the
noise-free ΔF/F0 by :mod:`offline.devsim.truth`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from offline.characterization_metrics import CHARACTERIZATION_PARAMS
from offline.devsim.generate import DevRecording, dev_params, generate

log = logging.getLogger(__name__)


def distribution_table(events: Iterable[dict]) -> str:
    """Markdown: per subtype, n and median [10 %, 90 %] of each characterization parameter."""
    by_subtype: dict[str, list[dict]] = defaultdict(list)
    for ev in events:
        by_subtype[ev["subtype"]].append(ev)
    lines = ["| subtype | n | " + " | ".join(CHARACTERIZATION_PARAMS) + " |",
             "|---|---|" + "---|" * len(CHARACTERIZATION_PARAMS)]
    for subtype in sorted(by_subtype):
        rows = by_subtype[subtype]
        cells = []
        for name in CHARACTERIZATION_PARAMS:
            values = np.array([float(r[name]) for r in rows])
            values = values[np.isfinite(values)]
            cells.append("–" if not values.size else "{:.2f} [{:.2f}, {:.2f}]".format(
                np.median(values), *np.percentile(values, [10, 90])))
        lines.append(f"| {subtype} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _contours(ax, instance: np.ndarray, extent: tuple[float, ...]) -> None:
    """Outline of the labelled pixels on an ``imshow`` with ``extent`` (row 0 at the top)."""
    if instance.max() > 0:
        ax.contour(instance > 0, levels=[0.5], colors="cyan", linewidths=0.6, extent=extent,
                   origin="upper")


def plot_preview(linescan: DevRecording, movie: DevRecording, path: str) -> None:
    """Line-scan (raw, ground truth) and the movie frame with the most labelled pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 14))
    rec = linescan.recording
    raw = rec.data.astype(np.float32).T
    extent = (0, rec.data.shape[0] * rec.dt_ms, rec.data.shape[1] * rec.pixel_um, 0)
    for ax, zoom in ((axes[0], False), (axes[1], True)):
        ax.imshow(raw, aspect="auto", cmap="gray", extent=extent, interpolation="nearest",
                  vmin=np.percentile(raw, 1), vmax=np.percentile(raw, 99.7))
        _contours(ax, rec.instance_mask.T, extent)
        ax.set(xlabel="time (ms)", ylabel="x (µm)")
        if zoom:
            ax.set(xlim=(0, extent[1] / 4), ylim=(extent[2] / 3, 0), title="zoom")
    axes[0].set_title(f"{rec.name}: raw counts + ground truth ({len(rec.events)} events, "
                      f"{rec.pixel_um:.2f} µm/px, {rec.dt_ms:.2f} ms/line)")
    axes[2].imshow(linescan.truth.clean_dff0.T, aspect="auto", cmap="magma", extent=extent)
    axes[2].set(title="noise-free ΔF/F0", xlabel="time (ms)", ylabel="x (µm)")
    axes = axes[1:]
    mov = movie.recording
    frame = int(np.argmax([len(np.unique(f)) for f in mov.instance_mask]))
    img = mov.data[frame].astype(np.float32)
    extent = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
    axes[2].imshow(img, cmap="gray", vmin=np.percentile(img, 1), vmax=np.percentile(img, 99.7),
                   extent=extent)
    _contours(axes[2], mov.instance_mask[frame], extent)
    axes[2].set(title=f"{mov.name}: frame {frame} ({mov.pixel_um:.2f} µm/px, "
                      f"{mov.dt_ms:.1f} ms/frame) + ground truth")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="devsim_preview.png")
    parser.add_argument("--n", type=int, default=12, help="line-scans for the table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    linescans = [generate(dev_params("linescan"), args.seed + i) for i in range(args.n)]
    log.info("%d line-scans in %.1f s", args.n, time.perf_counter() - started)
    started = time.perf_counter()
    movie = generate(dev_params("movie"), args.seed)
    log.info("1 movie in %.1f s", time.perf_counter() - started)
    plot_preview(linescans[0], movie, args.out)
    sys.stdout.write(distribution_table(ev for d in linescans for ev in d.recording.events))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
