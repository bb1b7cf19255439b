"""``analyze``'s work for one file: the streaming engine fed from a TIFF, chunk by chunk.

Writes ``OUT/events.csv`` (exactly :data:`~engine.events.EVENT_COLUMNS`), ``OUT/labels.tif``
(instance ids, same shape as the input, 0 = background, id = ``event_id``) and
``OUT/summary.json`` (calibration, per-cell summary, latency, the quality report) and
``OUT/overview.png`` (:mod:`engine.sinks.overview`), all written under a temporary name and
moved into ``OUT`` when complete (:mod:`engine.staging`): a failed run leaves no result. Calibration comes from the file's
metadata, flags override it, and the blank is estimated from dark pixels when neither gives it.

Given the cells of the recording's field (``analyze --cells cells.tif``, a
:class:`~engine.cells_attribution.FieldCells`), each event's ``cell`` becomes the id of the
cell it lies in (empty outside cells; :mod:`engine.cells_attribution`) and ``summary.json``
gets ``cells`` (one row per accepted cell: structure joined with spark phenotype,
:mod:`engine.cells_phenotype`) and ``cell_attribution`` (rule, counts).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from acquisition.stream_kind import StreamKind
from acquisition.tiff_source import open_tiff

from .analyzer import StreamInfo
from .blank import DARKEST_PIXELS, PHOTON_TRANSFER
from .cells_attribution import Attribution, FieldCells
from .cells_phenotype import CellPhenotypes
from .input_axes import check_axes_known, open_kind
from .pipeline import DetectorFactory, EngineConfig, run_stream
from .sinks.labels import LabelsWriter
from .sinks.overview import OverviewImage
from .sinks.tables import write_events_csv
from .staging import staged_output
from .stream_summary import summarize_stream

log = logging.getLogger(__name__)

CHUNK_FRAMES = {StreamKind.LINESCAN: 512, StreamKind.MOVIE: 32}
#: what one analysis writes into its output folder (``castream analyze`` refuses a folder that
#: holds any of them unless ``--force``)
RESULT_FILES = ("events.csv", "labels.tif", "summary.json", "overview.png")


def analyze_file(path: str | Path, out_dir: str | Path, config: EngineConfig,
                 pixel_um: float | None = None, dt_ms: float | None = None,
                 blank: float | None = None, progress: bool = False,
                 factory: DetectorFactory | None = None,
                 saturation_counts: float | None = None, axes: str | None = None,
                 cells: FieldCells | None = None, cells_metadata: dict | None = None) -> dict:
    """Analyze one recording; returns its summary (also written to ``summary.json``).

    ``saturation_counts`` overrides the saturation level (default: the dtype's maximum).
    ``axes`` (``TX`` / ``TYX``) says how to read the file when its metadata cannot
    (:mod:`engine.input_axes`). Outputs appear in ``out_dir`` only once all are written
    (:mod:`engine.staging`). Quality warnings (:mod:`engine.quality`) are logged and listed in
    the summary. ``cells`` attributes the events to the cells of the recording's field;
    ``cells_metadata`` may give ``line_y_um`` and ``field_origin_um`` (module docstring).
    """
    path, out_dir = Path(path), Path(out_dir)
    stream_kind = open_kind(axes, path)
    with open_tiff(path, pixel_um=pixel_um, dt_ms=dt_ms, blank=blank,
                   stream_kind=stream_kind) as source:
        check_axes_known(source, axes)
        with staged_output(out_dir) as staging:
            summary = _analyze_source(source, staging, config, factory or DetectorFactory(config),
                                      progress, saturation_counts, cells, cells_metadata)
    log.info("%s: %d events → %s", path.name, summary["n_events"], out_dir)
    return summary


def _analyze_source(source, out_dir: Path, config: EngineConfig, factory: DetectorFactory,
                    progress: bool, saturation_counts: float | None,
                    cells: FieldCells | None = None, cells_metadata: dict | None = None) -> dict:
    path = source.path
    info = StreamInfo(stream=path.stem, stream_kind=source.stream_kind,
                      frame_shape=source.shape[1:],
                      pixel_um=source.pixel_um, dt_ms=source.dt_ms, blank=source.blank,
                      cell=source.cell or path.stem, dtype=str(source.dtype),
                      saturation_counts=saturation_counts,
                      calibration_source=dict(source.calibration_source))
    analyzer = factory.analyzer(info, keep_labels=True)
    overview = OverviewImage(source.shape)
    with LabelsWriter(out_dir / "labels.tif", source.shape) as labels:
        events = run_stream(analyzer, _chunks(source, progress, overview), labels)
    per_cell = _attribute(cells, cells_metadata, analyzer, events) if cells else {}
    write_events_csv(out_dir / "events.csv", events)
    summary = {
        "file": str(path), "axes": source.axes, "shape": list(source.shape),
        "pixel_um": info.pixel_um, "dt_ms": info.dt_ms, "blank": analyzer.blank,
        "n_events": len(events), **factory.describe(info),
        **summarize_stream(analyzer, events), **per_cell,
    }
    analyzer.quality.log_new_warnings(path.name)
    (out_dir / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    overview.write(out_dir / "overview.png", events, info.pixel_um, info.dt_ms,
                   _overview_title(path, summary))
    return summary


def _attribute(cells: FieldCells, metadata: dict | None, analyzer, events) -> dict:
    """Events' ``cell`` set from the field's label image; the per-cell summary rows."""
    info = analyzer.info
    attribution = Attribution.for_stream(cells, info.stream_kind, info.frame_shape, info.pixel_um,
                                         metadata)
    attribution.apply(events)
    phenotypes = CellPhenotypes(analyzer.new_cell_vote)
    phenotypes.add(events)
    duration_s = analyzer.stats.frames_final * info.dt_ms / 1e3
    log.info("%s: %d of %d events attributed to the cells of %s (%s)", info.stream,
             attribution.n_attributed, len(events), cells.field, attribution.reason)
    return {"cell_attribution": attribution.as_dict(),
            "cells": phenotypes.rows(cells, duration_s, attribution)}


def _overview_title(path: Path, summary: dict) -> str:
    quality = summary["quality"]
    events = quality["events"]
    confidence = summary.get("confidence")
    limit = quality.get("detection_limit_dff0", math.nan)
    limit = math.nan if limit is None else float(limit)
    local = events.get("local_min_significance")
    floors = f"significance ≥ {events['min_significance']:g}"
    if local is not None:
        floors += f", ≥ {local:g} above its own pixels before"
    tails = events.get("rejected_tail_of_earlier_event") or 0
    no_rise = events.get("rejected_no_rise") or 0
    small = events.get("rejected_too_small") or 0
    rejected = f"{events['rejected_not_significant']} candidates rejected" + (
        "" if not tails else ", 1 tail of an earlier event" if tails == 1
        else f", {tails} tails of earlier events") + (
        f", {no_rise} without a rise" if no_rise else "") + (
        f", {small} too small for a spark" if small else "")
    return (f"{path.name}: {summary['n_events']} events "
            f"({floors}; {rejected})\n"
            f"resting SNR {quality['resting_snr']:.1f} · "
            + (f"detection limit ΔF/F0 {limit:.2f} · " if math.isfinite(limit) else "")
            + f"saturated {100 * quality['saturated_fraction']:.1f} % · cell {summary['label']}"
            + (f" ({confidence:.2f})" if confidence is not None else "")
            + _guessed_offset(quality.get("blank")))


def _guessed_offset(blank: dict | None) -> str:
    """`` · offset 415.6 from the noise`` where the blank was neither given nor read off dark
    pixels (:mod:`engine.blank`), else nothing."""
    how = {PHOTON_TRANSFER: "from the noise", DARKEST_PIXELS: "guessed from the darkest pixels"}
    if not blank or blank.get("source") not in how:
        return ""
    return f" · offset {blank['counts']:.1f} {how[blank['source']]}"


def _chunks(source, progress: bool, overview: OverviewImage | None = None):
    from tqdm import tqdm

    n = CHUNK_FRAMES[source.stream_kind]
    with tqdm(total=len(source), unit=source.stream_kind.item_name, desc=source.path.name,
              disable=not progress, leave=False) as bar:
        for first in range(0, len(source), n):
            frames = source.read(first, first + n)
            if overview is not None:
                overview.add(first, frames)
            yield first, frames
            bar.update(frames.shape[0])


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
