"""Ca²⁺ events attributed to the cells of their field of view through the structure label image.

A :class:`FieldCells` is what the structure analysis of one field left for the Ca²⁺ streams of
the same field: its label image (ids = ``cell_id``, 0 = background, every candidate ROI), the
pixel size of that image and the cell rows (``engine.cells.schema.CELL_COLUMNS``). Events are
attributed to **accepted cells** only (``is_cell`` = 1; a label image without rows accepts every
ROI): an event centred on background or on a rejected ROI gets an empty ``cell``.

Geometry. Event positions are µm from the Ca²⁺ recording's pixel 0 (sample i at i × pixel_um);
the label image's pixel j is at j × its own pixel_um. The two share their origin unless the
stream gives ``field_origin_um`` = ``[y, x]``: where the Ca²⁺ recording's pixel 0 lies in the
structure image, in µm. Rules, per stream (:attr:`Attribution.rule`):

* ``position`` (movies): the cell under the event's centre ``(y_um, x_um)``;
* ``line_y_um`` (line-scans whose metadata say where the scan line lies, ``line_y_um`` in the
  structure image's µm; the line runs along X): the cell under ``(line_y_um, x_um)``;
* ``single_cell`` (line-scans without ``line_y_um`` in a field with exactly one accepted cell):
  that cell, for events whose x falls within the cell's extent along X;
* ``none`` (line-scans without ``line_y_um`` in a field with several or no cells): no event is
  attributed (the position along one line cannot tell the cells apart); :attr:`reason` says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from acquisition.stream_kind import StreamKind

from .events import Event

log = logging.getLogger(__name__)

RULES = ("position", "line_y_um", "single_cell", "none")


@dataclass
class FieldCells:
    """The structure result of one field: label image, its pixel size and the cell rows."""

    field: str
    labels: np.ndarray  # (Y, X) ids, 0 = background
    pixel_um: float
    rows: list[dict] = field(default_factory=list)
    stream: str = ""  # the image stream it came from ("" offline)
    t_s: float = 0.0

    def __post_init__(self) -> None:
        self.labels = compact_labels(self.labels)

    @property
    def accepted_ids(self) -> list[int]:
        """Ids of accepted cells (every id in the label image when there are no rows)."""
        if not self.rows:
            return [int(i) for i in np.unique(self.labels) if i > 0]
        return [int(r["cell_id"]) for r in self.rows if _is_one(r.get("is_cell"))]

    @property
    def nbytes(self) -> int:
        return int(self.labels.nbytes)


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """A copy of ``labels`` in the smallest unsigned type that holds its ids (serve bounds
    the label images it keeps by bytes; the copy owns its memory)."""
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    dtype = np.uint8 if top < 1 << 8 else np.uint16 if top < 1 << 16 else np.uint32
    return np.array(labels, dtype=dtype, order="C")


def _is_one(value: Any) -> bool:
    try:
        return int(float(value)) == 1
    except (TypeError, ValueError):
        return False


def _metadata_number(metadata: Mapping[str, Any], name: str) -> float | None:
    value = metadata.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        log.warning("metadata %s=%r is not a finite number; ignored", name, value)
        return None
    return float(value)


def field_origin_um(metadata: Mapping[str, Any]) -> tuple[float, float]:
    """``field_origin_um`` ([y, x] µm) from stream metadata; (0, 0) when absent or invalid."""
    value = metadata.get("field_origin_um")
    if value is None:
        return 0.0, 0.0
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)):
        return float(value[0]), float(value[1])
    log.warning("metadata field_origin_um=%r is not [y, x] in µm; ignored", value)
    return 0.0, 0.0


@dataclass
class Attribution:
    """How one Ca²⁺ stream's events map to the cells of its field (module docstring).

    ``frame_shape`` and ``pixel_um`` are the Ca²⁺ recording's (one line ``(X,)`` or one frame
    ``(Y, X)``); they give the part of each cell the recording sees (:meth:`sampled_sizes`).
    """

    cells: FieldCells
    stream_kind: StreamKind
    frame_shape: tuple[int, ...]
    pixel_um: float
    line_y_um: float | None = None
    origin_um: tuple[float, float] = (0.0, 0.0)
    rule: str = "none"
    reason: str = ""
    n_attributed: int = 0
    n_unattributed: int = 0
    _accepted: frozenset[int] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._accepted = frozenset(self.cells.accepted_ids)

    @classmethod
    def for_stream(cls, cells: FieldCells, stream_kind: StreamKind,
                   frame_shape: tuple[int, ...], pixel_um: float,
                   metadata: Mapping[str, Any] | None = None) -> Attribution:
        """Pick the rule for a stream from its mode and metadata (``line_y_um``,
        ``field_origin_um``)."""
        metadata = metadata or {}
        line_y_um = _metadata_number(metadata, "line_y_um")
        made = cls(cells, stream_kind, tuple(frame_shape), float(pixel_um), line_y_um,
                   field_origin_um(metadata))
        made.rule, made.reason = made._choose_rule()
        return made

    def _choose_rule(self) -> tuple[str, str]:
        n_cells = len(self.cells.accepted_ids)
        if n_cells == 0:
            return "none", f"field {self.cells.field!r} has no accepted cell"
        if not self.stream_kind.is_linescan:
            return "position", "the cell under each event's centre"
        if self.line_y_um is not None:
            return "line_y_um", f"the cell under the scan line at y = {self.line_y_um:g} µm"
        if n_cells == 1:
            return "single_cell", "the field's only cell, where the line crosses it along X"
        return "none", (f"line-scan without line_y_um metadata in a field with {n_cells} "
                        "cells: the position along the line cannot tell them apart")

    def cell_of(self, x_um: float, y_um: float) -> int:
        """The accepted cell id at a position in the Ca²⁺ recording (0 = none)."""
        if self.rule == "none" or not math.isfinite(x_um):
            return 0
        if self.rule == "single_cell":
            return self._single_cell_at(x_um)
        row_um = self.line_y_um if self.rule == "line_y_um" else y_um + self.origin_um[0]
        if row_um is None or not math.isfinite(row_um):
            return 0
        label = self._label_at(row_um, x_um + self.origin_um[1])
        return label if label in self._accepted else 0

    def _label_at(self, y_um: float, x_um: float) -> int:
        labels, step = self.cells.labels, self.cells.pixel_um
        row, col = int(round(y_um / step)), int(round(x_um / step))
        if 0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]:
            return int(labels[row, col])
        return 0

    def _single_cell_at(self, x_um: float) -> int:
        cell_id = self.cells.accepted_ids[0]
        col = int(round((x_um + self.origin_um[1]) / self.cells.pixel_um))
        inside = 0 <= col < self.cells.labels.shape[1] and bool(self._single_columns[col])
        return cell_id if inside else 0

    @cached_property
    def _single_columns(self) -> np.ndarray:
        """Columns of the label image the field's only cell occupies."""
        return (self.cells.labels == self.cells.accepted_ids[0]).any(axis=0)

    def apply(self, events: Iterable[Event]) -> None:
        """Set each event's ``cell`` to its cell id, or ``""`` when it is in none."""
        for event in events:
            cell_id = self.cell_of(event.x_um, event.y_um)
            event.cell = str(cell_id) if cell_id else ""
            if cell_id:
                self.n_attributed += 1
            else:
                self.n_unattributed += 1

    def sampled_sizes(self) -> dict[int, float]:
        """Per accepted cell, how much of it the Ca²⁺ recording samples: the area (µm²) inside
        a movie's field of view, or the length (µm) of a line-scan's line inside the cell
        (``single_cell``: the cell's extent along X within the line); empty for ``none``."""
        step, labels = self.cells.pixel_um, self.cells.labels
        oy, ox = self.origin_um
        cols = _pixel_span(ox, self.frame_shape[-1] * self.pixel_um, step)
        if self.rule == "none":
            return {}
        if self.rule == "single_cell":
            return {self.cells.accepted_ids[0]: float(self._single_columns[cols].sum() * step)}
        if self.stream_kind.is_linescan:
            row = int(round(self.line_y_um / step))
            window, unit = labels[row:row + 1, cols] if row >= 0 else labels[:0, cols], step
        else:
            rows = _pixel_span(oy, self.frame_shape[0] * self.pixel_um, step)
            window, unit = labels[rows, cols], step * step
        counts = np.bincount(window.ravel(), minlength=int(labels.max()) + 1)
        return {cell_id: float(counts[cell_id] * unit) for cell_id in self.cells.accepted_ids}

    def as_dict(self) -> dict[str, Any]:
        """For ``summary.json`` and the stream's statistics."""
        return {"field": self.cells.field, "rule": self.rule, "reason": self.reason,
                "n_attributed": self.n_attributed, "n_unattributed": self.n_unattributed,
                "n_cells": len(self.cells.accepted_ids),
                "line_y_um": self.line_y_um, "field_origin_um": list(self.origin_um)}


def _pixel_span(start_um: float, length_um: float, step_um: float) -> slice:
    """Pixels of a label image (pixel ``step_um``) covered by ``[start, start + length)`` µm."""
    return slice(max(0, int(round(start_um / step_um))),
                 max(0, int(round((start_um + length_um) / step_um))))
