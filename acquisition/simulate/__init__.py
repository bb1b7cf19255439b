"""Simulated confocal microscope: Ca²⁺ sparks, puffs and waves in a cardiomyocyte, with
ground truth.

Seeded and deterministic (``np.random.default_rng``); produces line-scans ``(T, X)`` and
full-frame movies ``(T, Y, X)`` as :class:`Recording` objects.
TODO: full docstring (sources, phenotype shifts).
"""

from .groundtruth import EVENT_COLUMNS, MASK_FRACTION
from .linescan import simulate_linescan
from .movie import simulate_movie
from .params import (
    PHENOTYPES,
    CellParams,
    EventStats,
    LinescanParams,
    LogNormal,
    MovieParams,
    OpticsParams,
)
from .recording import Recording

__all__ = [
    "EVENT_COLUMNS",
    "MASK_FRACTION",
    "PHENOTYPES",
    "CellParams",
    "EventStats",
    "LinescanParams",
    "LogNormal",
    "MovieParams",
    "OpticsParams",
    "Recording",
    "simulate_linescan",
    "simulate_movie",
]
