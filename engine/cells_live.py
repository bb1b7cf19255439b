"""``serve``'s structure images, and the attribution of its Ca²⁺ streams' events to cells.

An image stream (wire mode ``image``, :mod:`acquisition.wire`) brings one structure image of a
field — 2-D or a z-stack — in one chunk. :class:`StructureStreams` analyses it with
:func:`engine.cells.analyze.analyze_structure` on its stream's post-processing worker, under
``serve``'s structure lock (Ca²⁺ streams emitting events lag meanwhile and catch up; nothing
is lost), writes the result to the sinks (store tables
``fields`` + ``cells``, PUB topic ``cell`` with ``source = "structure"``, a statistics sample
of the image stream) and keeps the label image per field in a :class:`FieldRegistry` (bounded:
the newest :data:`MAX_FIELDS` fields and :data:`MAX_FIELD_BYTES` of label images; the store
keeps every one). An image stream with ``content = "labels"`` brings the ROIs for the next
structure image of its field (like ``castream cells --labels``); they are used once (the
newest :data:`MAX_PENDING_LABELS` wait).

A Ca²⁺ stream names its field in the wire ``field`` (version 3) or, from older publishers, in
``metadata["field"]``. Once that field has a structure result, each event's ``cell`` becomes
the id of the cell it lies in, or empty (:mod:`engine.cells_attribution`: rules, geometry,
line-scans); events closed before the structure result arrived keep the stream's cell. When
the stream finishes, its per-cell summary (:mod:`engine.cells_phenotype`) goes to the sinks
(store ``cell_phenotypes``, PUB ``cell`` with ``source = "phenotype"``) and the attribution
counts to its last statistics sample (``cell_attribution``).

Bad input gets a specific code, a log line, a count in :attr:`StructureStreams.errors_by_code`
and ``cells_error`` in the image stream's statistics sample; other streams are untouched:
``image_shape`` (a plane under 32 px), ``nonfinite_image`` (NaN/Inf pixels; the ingest
already refuses them over the wire), ``labels_mismatch`` (ROIs of another size than the
image), ``labels_invalid`` (negative ids), ``labels_without_field``, ``no_cells`` (nothing
found or nothing accepted: the result is still stored), ``image_missing`` (stopped without an
image, when the ingest did not already refuse it). What the ingest refuses (a 1-D image, a
second chunk, NaN) never reaches here.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acquisition.ingest import ChunkReceived, StreamStarted, StreamStopped
from acquisition.wire import StartHeader

from .cells_attribution import Attribution, FieldCells, compact_labels
from .cells_phenotype import CellPhenotypes
from .events import Event

log = logging.getLogger(__name__)

MAX_FIELDS = 64
MAX_FIELD_BYTES = 512 * 1024 * 1024
MAX_PENDING_LABELS = 8  # labels images waiting for their structure image
MIN_SIDE_PX = 32  # engine.cells.analyze.MIN_SIDE_PX (imported lazily with torch)
CODES = ("image_shape", "nonfinite_image", "labels_mismatch", "labels_invalid",
         "labels_without_field", "no_cells", "image_missing")


class CellsInputError(ValueError):
    """A structure or labels image that cannot be analysed; ``code`` is the counter name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def field_of(header: StartHeader) -> str | None:
    """The field a stream names: wire ``field`` (v3), else ``metadata["field"]`` (older)."""
    if header.field:
        return header.field
    value = header.metadata.get("field") if isinstance(header.metadata, dict) else None
    return value if isinstance(value, str) and value else None


@dataclass
class FieldRegistry:
    """Label images per field (newest kept) and pending user ROIs, both bounded."""

    max_fields: int = MAX_FIELDS
    max_bytes: int = MAX_FIELD_BYTES
    fields: OrderedDict[str, FieldCells] = field(default_factory=OrderedDict)
    pending_labels: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)

    def put(self, cells: FieldCells) -> None:
        self.fields.pop(cells.field, None)
        self.fields[cells.field] = cells
        while len(self.fields) > 1 and (len(self.fields) > self.max_fields
                                        or self.nbytes > self.max_bytes):
            dropped, _ = self.fields.popitem(last=False)
            log.info("field %s dropped from memory (its cells stay in the store)", dropped)

    def get(self, field_id: str) -> FieldCells | None:
        return self.fields.get(field_id)

    def put_labels(self, field_id: str, labels: np.ndarray) -> None:
        self.pending_labels.pop(field_id, None)
        self.pending_labels[field_id] = compact_labels(labels)
        while len(self.pending_labels) > MAX_PENDING_LABELS:
            dropped, _ = self.pending_labels.popitem(last=False)
            log.warning("labels for field %s dropped: no structure image came for them",
                        dropped)

    def take_labels(self, field_id: str) -> np.ndarray | None:
        return self.pending_labels.pop(field_id, None)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.fields.values())


@dataclass
class _ImageStream:
    header: StartHeader
    field: str | None
    handled: bool = False  # its chunk was analysed or refused here


@dataclass
class _CaStream:
    field: str
    header: StartHeader
    phenotypes: CellPhenotypes
    attribution: Attribution | None = None
    waiting_logged: bool = False


class StructureStreams:
    """Image streams and cell attribution for :class:`~engine.serve.Server` (module docstring).

    Parameters
    ----------
    sinks : SinkSet
    model_path : Path, optional
        Cells model directory (default: the packaged one), loaded at the first image.
    registry : FieldRegistry, optional
    """

    def __init__(self, sinks, model_path: Path | str | None = None,
                 registry: FieldRegistry | None = None) -> None:
        self.sinks = sinks
        self.model_path = model_path
        self.registry = registry or FieldRegistry()
        self.errors_by_code: dict[str, int] = {}
        self._images: dict[str, _ImageStream] = {}
        self._ca: dict[str, _CaStream] = {}
        self._model = None

    # -- image streams ------------------------------------------------------------------------
    def claims(self, item) -> bool:
        """Whether ``item`` belongs to an image stream (handled here, not by an analyzer)."""
        if isinstance(item, StreamStarted):
            return item.header.stream_kind.is_image
        return item.header.stream in self._images

    def handle(self, item) -> bool:
        """One ingest item of an image stream; True once the stream has ended."""
        stream = item.header.stream
        if isinstance(item, StreamStarted):
            self._start(item.header)
        elif isinstance(item, ChunkReceived):
            self._chunk(self._images[stream], item)
        elif isinstance(item, StreamStopped):
            self._stop(self._images.pop(stream), item)
            return True
        return False

    def forget(self, stream: str) -> None:
        """A stream failed in serve: drop what is kept for it."""
        self._images.pop(stream, None)
        self._ca.pop(stream, None)

    def _start(self, header: StartHeader) -> None:
        field_id = field_of(header)
        self._images[header.stream] = _ImageStream(header, field_id)
        self.sinks.open_stream({
            "stream": header.stream, "cell": header.cell, "mode": "image",
            "shape": list(header.shape), "pixel_um": header.pixel_um, "dt_ms": None,
            "field": field_id, "content": header.content or "structure",
            "metadata": dict(header.metadata)})
        log.info("image stream %s started: %s of field %s, planes %s, %s µm/px", header.stream,
                 header.content or "structure", field_id, list(header.shape), header.pixel_um)

    def _chunk(self, state: _ImageStream, item: ChunkReceived) -> None:
        state.handled = True
        try:
            self._analyse(state, item.data)
        except CellsInputError as exc:
            self._count(state, exc.code, str(exc))

    def _stop(self, state: _ImageStream, item: StreamStopped) -> None:
        stats = item.stats
        if not state.handled:
            if stats is not None and stats.errors_by_code:
                codes = ", ".join(sorted(stats.errors_by_code))
                log.warning("image stream %s stopped without an analysed image: the ingest "
                            "refused it (%s)", item.header.stream, codes)
                self._sample(state, 0, error=(next(iter(stats.errors_by_code)),
                                              f"refused by the ingest ({codes})"))
            else:
                self._count(state, "image_missing", "the stream stopped without its image")
        self.sinks.close_stream(item.header.stream)

    def _count(self, state: _ImageStream, code: str, message: str,
               sample: bool = True) -> None:
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
        level = logging.WARNING if code == "no_cells" else logging.ERROR
        log.log(level, "image stream %s [%s]: %s", state.header.stream, code, message)
        if sample:
            self._sample(state, 0, error=(code, message))

    def _analyse(self, state: _ImageStream, data: np.ndarray) -> None:
        image = data[0] if data.shape[0] == 1 else data
        header = state.header
        if min(image.shape[-2:]) < MIN_SIDE_PX:
            raise CellsInputError("image_shape", f"image planes of {list(image.shape[-2:])} "
                                  f"px are too small: Y and X need at least {MIN_SIDE_PX}")
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise CellsInputError("nonfinite_image", "image has NaN/Inf pixels")
        if header.content == "labels":
            self._keep_labels(state, image)
            return
        field_id = state.field or header.stream
        labels = self.registry.take_labels(field_id)
        if labels is not None and labels.shape != image.shape[-2:]:
            raise CellsInputError("labels_mismatch", f"the labels sent for field {field_id!r} "
                                  f"are {list(labels.shape)}, the image is "
                                  f"{list(image.shape[-2:])}; image not analysed")
        from .cells.analyze import analyze_structure  # torch: only once images arrive

        result = analyze_structure(image, header.pixel_um, self.model, labels)
        cells = FieldCells(field_id, result.labels, header.pixel_um, result.rows,
                           header.stream, time.time())
        self.registry.put(cells)
        self.sinks.write_cells(header.stream, {
            "field": field_id, "t_s": cells.t_s, "shape": list(result.labels.shape),
            "pixel_um": header.pixel_um, "summary": result.summary, "rows": result.rows,
            "labels": result.labels})
        no_cells = None
        if result.summary["n_cells"] == 0:
            warnings = "; ".join(result.summary["quality"]["warnings"]) or "no ROI accepted"
            no_cells = ("no_cells", f"field {field_id!r} has no cells ({warnings})")
        self._sample(state, image.shape[0] if image.ndim == 3 else 1, result.summary, no_cells)
        log.info("field %s: %d candidates, %d cells in %.2f s (image stream %s)", field_id,
                 result.summary["n_candidates"], result.summary["n_cells"],
                 result.summary["elapsed_s"], header.stream)
        if no_cells is not None:
            self._count(state, *no_cells, sample=False)

    def _keep_labels(self, state: _ImageStream, labels: np.ndarray) -> None:
        if state.field is None:
            raise CellsInputError("labels_without_field", "a labels image needs a field (the "
                                  "structure image it belongs to names the same one)")
        if labels.min() < 0:
            raise CellsInputError("labels_invalid", "labels must be >= 0 (0 = background)")
        self.registry.put_labels(state.field, labels)
        self._sample(state, 1, {"labels_for_field": state.field,
                                "n_rois": int(np.unique(labels[labels > 0]).size)})
        log.info("labels for field %s kept (%s) for its next structure image", state.field,
                 list(labels.shape))

    def _sample(self, state: _ImageStream, planes: int, result: dict | None = None,
                error: tuple[str, str] | None = None) -> None:
        """The image stream's statistics sample: what was analysed, or why not."""
        cells = None if result is None else {
            k: result.get(k) for k in ("n_candidates", "n_cells", "n_rejected", "rois_from",
                                       "structure_score_mean", "elapsed_s", "labels_for_field",
                                       "n_rois") if k in result}
        self.sinks.write_stats(state.header.stream, {
            "t_s": time.time(), "frames_in": planes, "frames_analyzed": planes,
            "errors": 0 if error is None else 1, "field": state.field, "cells": cells,
            "cells_error": None if error is None else error[0],
            **({"failed": f"[{error[0]}] {error[1]}"} if error and not result else {})})

    @property
    def model(self):
        """The cells model, loaded at the first structure image."""
        if self._model is None:
            from .cells.model import DEFAULT_CELLS_MODEL, CellsModel

            self._model = CellsModel.load(self.model_path or DEFAULT_CELLS_MODEL)
        return self._model

    # -- Ca²⁺ streams ------------------------------------------------------------------------
    def ca_started(self, header: StartHeader, analyzer) -> None:
        """A Ca²⁺ stream started; it is followed when it names a field."""
        self._ca.pop(header.stream, None)
        field_id = field_of(header)
        if field_id is not None:
            self._ca[header.stream] = _CaStream(field_id, header,
                                                CellPhenotypes(analyzer.new_cell_vote))

    def attribute(self, stream: str, events: list[Event]) -> None:
        """Set the events' ``cell`` from their field's label image, when it is known."""
        ca = self._ca.get(stream)
        if ca is None or not events:
            return
        cells = self.registry.get(ca.field)
        if cells is None and ca.attribution is not None:
            cells = ca.attribution.cells  # dropped from the registry: this stream keeps it
        if cells is None:
            if not ca.waiting_logged:
                ca.waiting_logged = True
                log.warning("stream %s names field %s, which has no structure result yet: its "
                            "events keep cell=%r until one arrives", stream, ca.field,
                            events[0].cell)
            return
        if ca.attribution is None or ca.attribution.cells is not cells:
            if ca.attribution is not None:
                log.warning("field %s has a new structure result: stream %s's per-cell counts "
                            "restart", ca.field, stream)
                ca.phenotypes = CellPhenotypes(ca.phenotypes.new_vote)
            header = ca.header
            ca.attribution = Attribution.for_stream(cells, header.stream_kind, header.shape,
                                                    header.pixel_um, header.metadata)
            log.info("stream %s: events attributed to the cells of field %s by %s (%s)", stream,
                     ca.field, ca.attribution.rule, ca.attribution.reason)
        ca.attribution.apply(events)
        ca.phenotypes.add(events)

    def ca_finished(self, stream: str, analyzer) -> dict:
        """Write the stream's per-cell summary; returns extra keys for its last sample."""
        ca = self._ca.pop(stream, None)
        if ca is None:
            return {}
        if ca.attribution is None:
            return {"cell_attribution": {"field": ca.field, "rule": "none", "reason":
                                         "no structure result for the field arrived"}}
        duration_s = analyzer.stats.frames_final * analyzer.info.dt_ms / 1e3
        rows = ca.phenotypes.rows(ca.attribution.cells, duration_s, ca.attribution)
        self.sinks.write_cell_phenotypes(stream, ca.field, rows)
        return {"cell_attribution": ca.attribution.as_dict()}
