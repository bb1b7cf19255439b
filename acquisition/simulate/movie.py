"""Simulated full-frame confocal movie ``(T, Y, X)`` (Dotti et al. 2024 settings)."""

from __future__ import annotations

from .cell import movie_cell
from .events import Grid
from .params import MovieParams, resolve_stats
from .recording import Recording, assemble, seeded_generators


def simulate_movie(params: MovieParams | None = None, seed: int = 0) -> Recording:
    """Simulate a full-frame movie of one cell.

    Parameters
    ----------
    params
        Acquisition, cell, optics and event settings (defaults: 64×512 px at 0.2 µm/px,
        6.8 ms/frame, 3.4 s (500 frames), wild type).
    seed
        Seed of ``np.random.default_rng``; the same seed gives the same recording.

    Returns
    -------
    Recording
        ``data`` of shape ``(n_frames, n_y, n_x)``, axes ``"TYX"``, with ground truth.
    """
    params = params or MovieParams()
    stats = resolve_stats(params.phenotype, params.stats)
    cell_rng, event_rng, noise_rng = seeded_generators(seed)
    cell = movie_cell(params.n_y, params.n_x, params.pixel_um, params.cell, cell_rng)
    grid = Grid(params.n_time, params.dt_ms, params.pixel_um, (params.n_y, params.n_x))
    return assemble(cell, grid, stats, params.optics, phenotype=params.phenotype, seed=seed,
                    axes="TYX", ignore_rim=params.ignore_rim, band_um=params.scan_band_um,
                    event_rng=event_rng, noise_rng=noise_rng)
