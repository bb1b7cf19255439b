"""Simulated confocal line-scan ``(T, X)``: one row per line, time first."""

from __future__ import annotations

from .cell import linescan_cell
from .events import Grid
from .params import LinescanParams, resolve_stats
from .recording import Recording, assemble, seeded_generators


def simulate_linescan(params: LinescanParams | None = None, seed: int = 0) -> Recording:
    """Simulate a line-scan along the long axis of one cell.

    Parameters
    ----------
    params
        Acquisition, cell, optics and event settings (defaults: 512 px at 0.14 µm/px,
        1.5 ms/line, 5 s, wild type).
    seed
        Seed of ``np.random.default_rng``; the same seed gives the same recording.

    Returns
    -------
    Recording
        ``data`` of shape ``(n_lines, n_pixels)``, axes ``"TX"``, with ground truth.
    """
    params = params or LinescanParams()
    stats = resolve_stats(params.phenotype, params.stats)
    cell_rng, event_rng, noise_rng = seeded_generators(seed)
    cell = linescan_cell(params.n_pixels, params.pixel_um, params.cell, cell_rng)
    grid = Grid(params.n_time, params.dt_ms, params.pixel_um, (params.n_pixels,))
    return assemble(cell, grid, stats, params.optics, phenotype=params.phenotype, seed=seed,
                    axes="TX", ignore_rim=params.ignore_rim, event_rng=event_rng,
                    noise_rng=noise_rng)
