"""Ground truth from the events' own contributions: instance mask, Dotti class mask, events.

An event owns the pixels where its own ΔF/F0 is at least ``fraction_of_peak`` of its own peak;
where several events qualify, the larger contribution wins. An event that loses its own peak
pixel to another is hidden: it gets no id, the ownership is settled again without it, and its
leftover pixels become ``IGNORE`` (as do those of events fainter than ``ignore_below_dff0``,
which no annotator would mark). Ids are 1… in the order of the events' peak times; the events
list has one dict per id with exactly :data:`engine.events.EVENT_COLUMNS` (read at run time;
keys not computed here get the schema's default, else NaN) plus ``"subtype"``.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields

import numpy as np

from acquisition.labels import CLASS_IDS, IGNORE
from engine.events import EVENT_COLUMNS, Event
from offline.devsim.measure import measure_contribution
from offline.devsim.render import Contribution

MAX_ROUNDS = 6
#: values of the columns not measured here (the schema's defaults: "" for text, NaN for numbers)
_COLUMN_DEFAULTS = {f.name: f.default for f in fields(Event) if f.default is not MISSING}


@dataclass
class GroundTruth:
    """Masks (same shape as the data), the events and the noise-free ΔF/F0."""

    instance_mask: np.ndarray
    class_mask: np.ndarray
    events: list[dict]
    clean_dff0: np.ndarray


def _owners(contribs: list[Contribution], active: list[int], shape: tuple[int, ...],
            fraction: float) -> np.ndarray:
    """Index + 1 of the winning contribution per pixel (0: none)."""
    best = np.zeros(shape, np.float32)
    owner = np.zeros(shape, np.int32)
    for k in active:
        c = contribs[k]
        region = c.values >= fraction * c.peak_dff0
        current = best[c.slices]
        win = region & (c.values > current)
        current[win] = c.values[win]
        owner[c.slices][win] = k + 1
    return owner


def _peak_pixel(c: Contribution) -> tuple[int, ...]:
    local = np.unravel_index(int(np.argmax(c.values)), c.values.shape)
    return tuple(int(o + i) for o, i in zip(c.origin, local, strict=True))


def build_truth(contribs: list[Contribution], shape: tuple[int, ...], dt_ms: float,
                pixel_um: float, cell: str = "", fraction_of_peak: float = 0.2,
                ignore_below_dff0: float = 0.1) -> GroundTruth:
    """Masks and events of a recording of ``shape`` from its events' contributions."""
    clean = np.zeros(shape, np.float32)
    for c in contribs:
        clean[c.slices] += c.values
    labelled = [k for k, c in enumerate(contribs) if c.peak_dff0 >= ignore_below_dff0]
    active = list(labelled)
    for _ in range(MAX_ROUNDS):
        owner = _owners(contribs, active, shape, fraction_of_peak)
        hidden = {k for k in active if owner[_peak_pixel(contribs[k])] != k + 1}
        if not hidden:
            break
        active = [k for k in active if k not in hidden]
    else:
        owner = _owners(contribs, active, shape, fraction_of_peak)
    active.sort(key=lambda k: _peak_pixel(contribs[k])[0])
    lut = np.zeros(len(contribs) + 1, np.int32)
    lut[[k + 1 for k in active]] = np.arange(1, len(active) + 1)
    instance = lut[owner]
    class_lut = np.array([0] + [CLASS_IDS[contribs[k].kind] for k in active], np.uint8)
    class_mask = class_lut[instance]
    for k in set(range(len(contribs))) - set(active):
        c = contribs[k]
        region = (c.values >= fraction_of_peak * c.peak_dff0) & (instance[c.slices] == 0)
        class_mask[c.slices][region] = IGNORE
    events = []
    for event_id, k in enumerate(active, start=1):
        events.append(_event_row(event_id, contribs[k], instance, dt_ms, pixel_um, cell))
    return GroundTruth(instance, class_mask, events, clean)


def _event_row(event_id: int, c: Contribution, instance: np.ndarray, dt_ms: float,
               pixel_um: float, cell: str) -> dict:
    measured = measure_contribution(c.values, dt_ms, pixel_um)
    peak = [o + i for o, i in zip(c.origin, measured.pop("peak_index"), strict=True)]
    frames = np.flatnonzero((instance[c.slices] == event_id).reshape(c.values.shape[0], -1)
                            .any(axis=1)) + c.origin[0]
    row = {key: _COLUMN_DEFAULTS.get(key, math.nan) for key in EVENT_COLUMNS}
    row.update(measured)
    row.update({
        "event_id": event_id, "kind": c.kind, "cell": cell,
        "t_start_ms": float(frames[0]) * dt_ms, "t_peak_ms": float(peak[0]) * dt_ms,
        "t_end_ms": float(frames[-1]) * dt_ms, "x_um": float(peak[-1]) * pixel_um,
        "y_um": float(peak[1]) * pixel_um if len(peak) == 3 else math.nan,
    })
    row = {key: row[key] for key in EVENT_COLUMNS}
    row["subtype"] = c.subtype
    return row
