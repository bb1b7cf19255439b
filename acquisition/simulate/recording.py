"""The :class:`Recording` returned by the simulator and the steps shared by both modes."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..stream_kind import StreamKind
from .cell import CellModel
from .events import Grid, sample_events
from .groundtruth import build_ground_truth
from .optics import acquire
from .params import EventStats, OpticsParams

log = logging.getLogger(__name__)


@dataclass
class Recording:
    """A simulated recording with its ground truth.

    Attributes
    ----------
    data
        ``(T, X)`` or ``(T, Y, X)`` uint16 counts, offset (``blank``) included.
    class_mask
        uint8, same shape, Dotti class ids (0 bg, 1 spark, 2 wave, 3 puff, 4 ignore).
    instance_mask
        int32, same shape, 0 = background, id = ``event_id``.
    events
        One dict per event with exactly ``EVENT_COLUMNS`` keys, measured on the noise-free
        signal.
    pixel_um, dt_ms
        Calibration: pixel size (µm) and line/frame interval (ms).
    blank
        Camera/PMT offset in counts.
    cell, phenotype, axes
        Cell id, ``"wt"``/``"cpvt"``, ``"TX"``/``"TYX"``.
    clean_dff0
        Noise-free ΔF/F0 (float32, same shape); ``None`` when read back from files.
    """

    data: np.ndarray
    class_mask: np.ndarray
    instance_mask: np.ndarray
    events: list[dict]
    pixel_um: float
    dt_ms: float
    blank: float
    cell: str
    phenotype: str
    axes: str
    clean_dff0: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def stream_kind(self) -> StreamKind:
        """Line-scan or movie, from :attr:`axes`."""
        return StreamKind.from_axes(self.axes)

    def counts_by_kind(self) -> dict[str, int]:
        """Number of events of each kind."""
        return dict(Counter(ev["kind"] for ev in self.events))


def seeded_generators(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for the cell, the events and the detector noise."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def assemble(cell: CellModel, grid: Grid, stats: EventStats, optics: OpticsParams, *,
             phenotype: str, seed: int, axes: str, ignore_rim: bool,
             band_um: float | None = None, event_rng: np.random.Generator,
             noise_rng: np.random.Generator) -> Recording:
    """Sample events, build the ground truth and acquire the noisy counts."""
    cell_id = f"sim-{StreamKind.from_axes(axes).value}-{phenotype}-{seed}"
    events = sample_events(stats, cell, grid, event_rng, band_um)
    truth = build_ground_truth(events, grid, cell.inside, cell_id, ignore_rim)
    data = acquire(truth.clean_dff0, cell.resting, grid.dt_ms, optics, noise_rng)
    rec = Recording(data, truth.class_mask, truth.instance_mask, truth.events, grid.pixel_um,
                    grid.dt_ms, float(optics.blank_counts), cell_id, phenotype, axes,
                    truth.clean_dff0, {"seed": seed, "simulator": "castream"})
    log.debug("simulated %s %s: %s", axes, data.shape, rec.counts_by_kind())
    return rec
