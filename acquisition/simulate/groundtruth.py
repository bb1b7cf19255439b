"""Ground truth from each event's own noise-free ΔF/F0: masks and the events table.

* **Masks**: the mask of an event is the set of pixels (inside the cell) where its own
  noise-free ΔF/F0 is ≥ ``MASK_FRACTION`` (20 %) of its peak amplitude. Where masks overlap,
  the event contributing the larger ΔF/F0 at that pixel wins. Ids are 1..n in order of peak
  time (``instance_mask`` id = ``event_id``). ``class_mask`` holds the Dotti class id of each
  pixel's event. An event that loses its own peak pixel to a stronger one is *hidden*: it
  stays in the signal but gets no id, and the masks are assigned again without it. With
  ``ignore_rim``, background pixels where some event (hidden ones included) reaches
  ``RIM_FRACTION`` (10 %) of its peak are set to IGNORE (4).
* **Measurements** (DESIGN.md definitions) on the event's own ΔF/F0 sampled on the grid:
  amplitude = peak value; FWHM along x through the peak pixel at the peak time; FDHM through
  the peak pixel; rise = 10 % crossing before the peak → peak; t50 = peak → 50 % crossing
  after it. Crossings are linearly interpolated between samples; the peak itself is the peak
  sample (``t_peak_ms`` = index × ``dt_ms``). A crossing outside the recording gives NaN.
  ``t_start_ms``/``t_end_ms`` are the first/last line or frame of the event's final mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .events import Grid, SimEvent, render_event

MASK_FRACTION = 0.2
RIM_FRACTION = 0.1
CACHE_MAX_VALUES = 2_000_000
SPARK, WAVE, PUFF, IGNORE = 1, 2, 3, 4  # acquisition.labels (Dotti ids)
KIND_CLASS = {"spark": SPARK, "wave": WAVE, "puff": PUFF}

#: must equal engine.events.EVENT_COLUMNS (checked by tests; acquisition cannot import engine)
EVENT_COLUMNS = (
    "event_id", "kind", "t_start_ms", "t_peak_ms", "t_end_ms", "x_um", "y_um",
    "amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms", "stream", "cell", "score",
    "significance", "flags",
)


def crossing_before(profile: np.ndarray, peak: int, level: float) -> float:
    """Fractional index where ``profile`` last rises through ``level`` before ``peak``."""
    below = np.flatnonzero(profile[:peak] < level)
    if below.size == 0:
        return math.nan
    i = int(below[-1])
    return i + (level - profile[i]) / (profile[i + 1] - profile[i])


def crossing_after(profile: np.ndarray, peak: int, level: float) -> float:
    """Fractional index where ``profile`` first falls through ``level`` after ``peak``."""
    below = np.flatnonzero(profile[peak + 1:] < level)
    if below.size == 0:
        return math.nan
    j = peak + 1 + int(below[0])
    return j - 1 + (profile[j - 1] - level) / (profile[j - 1] - profile[j])


def measure_block(block: np.ndarray, origin: tuple[int, ...], dt_ms: float,
                  pixel_um: float) -> dict[str, float]:
    """Characteristics of one event from its own noise-free ΔF/F0 ``block``.

    ``origin`` is the index of ``block[0, ...]`` in the recording.
    """
    peak = np.unravel_index(int(np.argmax(block)), block.shape)
    amplitude = float(block[peak])
    temporal = block[(slice(None),) + tuple(peak[1:])].astype(np.float64)
    spatial = block[tuple(peak[:-1]) + (slice(None),)].astype(np.float64)
    half, pt, px = 0.5 * amplitude, int(peak[0]), int(peak[-1])
    y_um = (origin[1] + peak[1]) * pixel_um if block.ndim == 3 else math.nan
    return {
        "t_peak_ms": (origin[0] + pt) * dt_ms,
        "x_um": (origin[-1] + px) * pixel_um,
        "y_um": float(y_um),
        "amplitude_dff0": amplitude,
        "fwhm_um": (crossing_after(spatial, px, half) - crossing_before(spatial, px, half)) * pixel_um,
        "fdhm_ms": (crossing_after(temporal, pt, half) - crossing_before(temporal, pt, half)) * dt_ms,
        "rise_ms": (pt - crossing_before(temporal, pt, 0.1 * amplitude)) * dt_ms,
        "t50_ms": (crossing_after(temporal, pt, half) - pt) * dt_ms,
    }


@dataclass
class GroundTruth:
    """Accumulated noise-free signal, masks and per-event measurements of one recording."""

    clean_dff0: np.ndarray
    instance_mask: np.ndarray
    class_mask: np.ndarray
    events: list[dict] = field(default_factory=list)


class _Accumulator:
    """Adds events one by one: sums ΔF/F0, keeps the strongest event per pixel."""

    def __init__(self, grid: Grid, inside: np.ndarray, ignore_rim: bool,
                 clean: np.ndarray | None = None):
        shape = (grid.n_time, *grid.spatial_shape)
        self.grid, self.inside = grid, inside
        self.sum_clean = clean is None
        self.clean = np.zeros(shape, np.float32) if clean is None else clean
        self.best = np.zeros(shape, np.float32)
        self.instance = np.zeros(shape, np.int32)
        self.rim = np.zeros(shape, bool) if ignore_rim else None
        self.rows: list[dict] = []
        self.sources: list[SimEvent] = []
        self.peaks: list[tuple[int, ...]] = []

    def add(self, ev: SimEvent, label: bool = True,
            rendered: tuple[tuple[slice, ...], np.ndarray] | None = None) -> tuple | None:
        """Render ``ev`` (or use ``rendered``); label its mask unless ``label`` is false (then
        only the rim). Returns the rendering, or ``None`` if the event is not visible."""
        slices, block = rendered or render_event(ev, self.grid, self.inside)
        if block.size == 0 or float(block.max()) <= 0:
            return None
        if self.sum_clean:
            self.clean[slices] += block
        origin = tuple(s.start for s in slices)
        row = measure_block(block, origin, self.grid.dt_ms, self.grid.pixel_um)
        inside = self.inside[slices[1:]]
        if self.rim is not None:
            self.rim[slices] |= (block >= RIM_FRACTION * row["amplitude_dff0"]) & inside
        if not label:
            return slices, block
        event_id = len(self.rows) + 1
        self.rows.append({"event_id": event_id, "kind": ev.kind, **row})
        self.sources.append(ev)
        peak = np.unravel_index(int(np.argmax(block)), block.shape)
        self.peaks.append(tuple(int(o + p) for o, p in zip(origin, peak, strict=True)))
        wins = (block >= MASK_FRACTION * row["amplitude_dff0"]) & inside & (block > self.best[slices])
        self.instance[slices][wins] = event_id
        self.best[slices][wins] = block[wins]
        return slices, block

    def owns_peak(self) -> list[bool]:
        """Whether each labelled event still holds its own peak pixel."""
        return [bool(self.instance[peak] == row["event_id"])
                for peak, row in zip(self.peaks, self.rows, strict=True)]


def _finalize(acc: _Accumulator, cell_id: str) -> GroundTruth:
    """Drop events without pixels, renumber, fill start/end times and the class mask."""
    counts = np.bincount(acc.instance.ravel(), minlength=len(acc.rows) + 1)
    kept = [row for row in acc.rows if counts[row["event_id"]] > 0]
    lut = np.zeros(len(acc.rows) + 1, np.int32)
    kind_lut = np.zeros(len(kept) + 1, np.uint8)
    for new_id, row in enumerate(kept, start=1):
        lut[row["event_id"]], row["event_id"] = new_id, new_id
        kind_lut[new_id] = KIND_CLASS[row["kind"]]
    instance = lut[acc.instance] if len(kept) < len(acc.rows) else acc.instance
    class_mask = kind_lut[instance]
    if acc.rim is not None:
        class_mask[acc.rim & (instance == 0)] = IGNORE
    boxes = ndimage.find_objects(instance, max_label=len(kept))
    events = [_complete_row(row, boxes[row["event_id"] - 1], acc.grid.dt_ms, cell_id) for row in kept]
    return GroundTruth(acc.clean, instance, class_mask, events)


def _complete_row(row: dict, box: tuple[slice, ...], dt_ms: float, cell_id: str) -> dict:
    row = {**row, "t_start_ms": box[0].start * dt_ms, "t_end_ms": (box[0].stop - 1) * dt_ms,
           "stream": "", "cell": cell_id, "score": 1.0, "significance": math.nan, "flags": ""}
    return {name: row[name] for name in EVENT_COLUMNS}


def build_ground_truth(events: list[SimEvent], grid: Grid, inside: np.ndarray, cell_id: str,
                       ignore_rim: bool = False) -> GroundTruth:
    """Render ``events`` (sorted by peak time) and derive masks and the events table."""
    acc = _Accumulator(grid, inside, ignore_rim)
    cache: dict[int, tuple] = {}  # small renderings, reused if labelling runs again
    for index, ev in enumerate(events):
        rendered = acc.add(ev)
        if rendered is not None and rendered[1].size <= CACHE_MAX_VALUES:
            cache[index] = rendered
    owns = acc.owns_peak()
    if not all(owns):  # hidden events: label again without them (their signal stays)
        hidden = {id(ev) for ev, own in zip(acc.sources, owns, strict=True) if not own}
        again = _Accumulator(grid, inside, ignore_rim, clean=acc.clean)
        for index, ev in enumerate(events):
            again.add(ev, label=id(ev) not in hidden, rendered=cache.get(index))
        acc = again
    return _finalize(acc, cell_id)
