"""Held-out check on a real cell: development movies on a recorded confocal cell image.

``python -m offline.experiments.real_cell_movies --n 12`` renders ``--n`` movies with the
development generator's events (reaction-diffusion sparks through a confocal PSF, multi-site
puffs, waves; :mod:`offline.devsim`) and detector (shot and read noise, flicker, drift,
bleaching), but on the cell of a *recorded* confocal frame of a ventricular myocyte
(iSpark's sample cell, 120 × 512 px at 0.28 µm/px, ``../shared/data/ispark_cell_background.npz``,
read at run time and never copied into this repository) instead of a generated one, and prints
``castream evaluate``'s tables for each ``--detector`` (and the false events per second on
``--n-empty`` movies of the same cell without events). It is the movie half of the
independent benchmark's construction ("a real confocal cell image at 0.28 µm/px (120x512
px)"): the cell's own striations, nucleus, edges and uneven brightness, which neither
generator draws.

**Held out**: no threshold, model or parameter is chosen on it (``../shared/data/README.md``);
it is run to report, never to select.

Construction: the recorded frame, divided by the median of the cell, is the resting
brightness; the cell is its mask with the nucleus hole filled, the nucleus that hole; release
sites lie on z-lines across the cell's long axis (X) every ``Z_LINE_UM`` (a random phase), every
0.7 µm along them, at least 1 µm from the edge and the nucleus (the development generator's
rule). Everything else (frame interval 3–20 ms, duration, event rates, dye, resting SNR
1.5–10) is drawn as the development generator draws it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from offline.datasets import LabeledRecording
from offline.devsim.calibration import draw_setup
from offline.devsim.cell import SITE_JITTER_UM, SITE_SPACING_UM, CellLayout, keep_sites
from offline.devsim.detector import acquire
from offline.devsim.generate import dev_params
from offline.devsim.render import Renderer
from offline.devsim.schedule import Planner, ReleaseLibrary
from offline.devsim.truth import build_truth
from offline.experiments import heldout
from offline.experiments.heldout import SHARED_DATA

log = logging.getLogger(__name__)

BACKGROUND = SHARED_DATA / "ispark_cell_background.npz"
Z_LINE_UM = 1.85
#: seeds of these recordings' RNG stream (apart from every other generator's)
STREAM = 0xCE11


def load_cell(path: Path = BACKGROUND) -> tuple[np.ndarray, np.ndarray, float]:
    """``(resting brightness, cell mask without the nucleus, pixel µm)`` of the recorded frame."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this check needs ../shared/data "
                                "(iSpark's sample cell)")
    with np.load(path) as data:
        background = np.asarray(data["background"], np.float64)
        cytosol = np.asarray(data["mask"], bool)
        pixel_um = float(data["pixel_um"])
    return background / float(np.median(background[cytosol])), cytosol, pixel_um


def cell_layout(resting: np.ndarray, cytosol: np.ndarray, pixel_um: float,
                rng: np.random.Generator) -> CellLayout:
    """The development generator's layout of the recorded cell (module docstring)."""
    inside = ndimage.binary_fill_holes(cytosol)
    nucleus = inside & ~cytosol
    height, width = (n * pixel_um for n in resting.shape)
    z_lines = np.arange(rng.uniform(0, Z_LINE_UM), width, Z_LINE_UM)
    rows = np.arange(rng.uniform(0, SITE_SPACING_UM), height, SITE_SPACING_UM)
    ys, xs = np.meshgrid(rows, z_lines, indexing="ij")
    sites = np.stack([ys.ravel(), xs.ravel()], axis=1)
    sites += rng.normal(0, SITE_JITTER_UM, sites.shape)
    return CellLayout(inside, nucleus, resting.astype(np.float32),
                      keep_sites(sites, inside, nucleus, pixel_um))


def real_cell_movie(seed: int, cell: tuple[np.ndarray, np.ndarray, float],
                    empty: bool = False) -> LabeledRecording:
    """One movie (module docstring) from ``seed``; ``empty``: without events."""
    resting, cytosol, pixel_um = cell
    rng = np.random.default_rng([seed, STREAM, int(empty)])
    params = dev_params("movie", {"empty": empty})
    setup = draw_setup(params, rng)
    rows = resting.shape[0]
    row_dt = setup.dt_ms / rows if params.row_scan_timing else 0.0
    setup = dataclasses.replace(setup, pixel_um=pixel_um, shape=(setup.shape[0], *resting.shape),
                                row_dt_ms=row_dt)
    layout = cell_layout(resting, cytosol, pixel_um, rng)
    library = ReleaseLibrary.draw(params, rng)
    duration_ms = setup.shape[0] * setup.dt_ms
    planned = Planner(params, library, layout, pixel_um, duration_ms, rng).plan()
    renderer = Renderer(setup, layout, rng)
    contributions = [c for c in map(renderer.render, planned) if c is not None and c.peak_dff0 > 0]
    name = f"real-cell-{'empty-' if empty else ''}{seed}"
    truth = build_truth(contributions, setup.shape, setup.dt_ms, pixel_um, name,
                        params.truth_fraction_of_peak, params.ignore_below_dff0)
    data = acquire(truth.clean_dff0, layout, setup, rng)
    return LabeledRecording(
        data=data, class_mask=truth.class_mask, instance_mask=truth.instance_mask,
        pixel_um=pixel_um, dt_ms=setup.dt_ms, axes=setup.stream_kind.axes,
        blank=setup.detector.offset_counts, events=truth.events, name=name, cell=name)


def main(argv: list[str] | None = None) -> int:
    from acquisition.stream_kind import StreamKind
    from engine.models.model_dir import default_model_path
    from offline.datasets import LazyRecordings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    heldout.add_arguments(parser, "movies", "the movie model")
    parser.add_argument("--n-empty", type=int, default=6,
                        help="movies without events (false events per second; default 6)")
    parser.add_argument("--background", type=Path, default=BACKGROUND,
                        help=f"iSpark's sample cell (default {BACKGROUND})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    cell = heldout.read_material(load_cell, args.background, log)
    if cell is None:
        return 1
    recordings = LazyRecordings(
        lambda i: real_cell_movie(args.seed + i % args.n, cell, empty=i >= args.n),
        args.n + args.n_empty)
    model = args.model or default_model_path(StreamKind.MOVIE, "accurate")
    heldout.log_tables(recordings, model, args.detector, "a recorded cell", log,
                        args.blank)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
