"""A field of view seen twice: a simulated structure image (``acquisition.simulate.structure``)
and a Ca²⁺ movie of the same field whose sparks sit at known points inside its true cells."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from acquisition.simulate.structure import (
    StructureField,
    StructureFieldParams,
    simulate_structure_field,
)

FIELD_PARAMS = StructureFieldParams(shape_px=(400, 400), pixel_um=0.15, n_cardiomyocytes=2,
                                    n_debris=1, n_dead=0, n_fibroblasts=0, n_out_of_focus=0)
MOVIE_PIXEL_UM = 0.3
MOVIE_DT_MS = 10.0
MOVIE_BLANK = 100
SPARK_TIMES_MS = (300.0, 650.0)


@dataclass
class Scene:
    field: StructureField
    movie: np.ndarray  # (T, Y, X) uint16, blank MOVIE_BLANK
    sites: list[tuple[int, float, float]]  # (true object id, y_um, x_um) of each spark site

    @property
    def n_sparks(self) -> int:
        return len(self.sites) * len(SPARK_TIMES_MS)


def field_scene(seed: int = 3, n_frames: int = 100) -> Scene:
    """Two sparks at the innermost point of each true cell (distance transform maximum),
    on a resting level of 40 photons inside the cells and 4 outside, Poisson noise."""
    field = simulate_structure_field(FIELD_PARAMS, seed=seed)
    truth, step = field.cell_labels(), field.pixel_um
    side_um = truth.shape[0] * step
    n_px = int(round(side_um / MOVIE_PIXEL_UM))
    y_um, x_um = np.mgrid[0:n_px, 0:n_px] * MOVIE_PIXEL_UM
    rows = np.clip(np.round(y_um / step).astype(int), 0, truth.shape[0] - 1)
    cols = np.clip(np.round(x_um / step).astype(int), 0, truth.shape[1] - 1)
    resting = np.where(truth[rows, cols] > 0, 40.0, 4.0)
    sites = []
    for obj in (int(i) for i in np.unique(truth) if i > 0):
        inside = ndimage.distance_transform_edt(truth == obj)
        y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
        sites.append((obj, y * step, x * step))
    t_ms = np.arange(n_frames) * MOVIE_DT_MS
    dff0 = np.zeros((n_frames, n_px, n_px), np.float32)
    for k, (_, y, x) in enumerate(sites):
        space = np.exp(-((y_um - y) ** 2 + (x_um - x) ** 2) / 2.0)  # sigma 1 µm
        for t0 in SPARK_TIMES_MS:
            t0 += 40.0 * k
            late = np.clip(t_ms - t0, 0.0, None)
            course = np.where(t_ms < t0, 0.0, (1 - np.exp(-late / 8.0)) * np.exp(-late / 40.0))
            dff0 += 2.5 * course[:, None, None].astype(np.float32) * space[None]
    rng = np.random.default_rng(seed)
    movie = rng.poisson(resting[None] * (1.0 + dff0)) + MOVIE_BLANK
    return Scene(field, movie.astype(np.uint16), sites)


def detected_id_at(labels: np.ndarray, pixel_um: float, y_um: float, x_um: float) -> int:
    return int(labels[int(round(y_um / pixel_um)), int(round(x_um / pixel_um))])
