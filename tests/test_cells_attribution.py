"""Events to cells through a label image (rules and geometry), the per-cell summary join, the
store's cells tables, and serve's structure-image error codes (without ZeroMQ)."""

from __future__ import annotations

import math
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from acquisition.ingest import ChunkReceived, StreamStarted, StreamStopped
from acquisition.stream_kind import StreamKind
from acquisition.wire import IMAGE_DT_MS, ChunkHeader, StartHeader, StopHeader
from engine.cells_attribution import Attribution, FieldCells
from engine.cells_live import StructureStreams
from engine.cells_phenotype import PHENOTYPE_COLUMNS, CellPhenotypes
from engine.events import Event
from engine.sinks import SinkSet, cells_tables
from engine.sinks.store import SqliteStore, migrate
from tests.serve_helpers import MemorySink


def _labels() -> np.ndarray:
    """Three ROIs on a 0.5-µm grid: cell 1 (x 0-10 µm), cell 2 (x 20-30 µm), 3 rejected."""
    labels = np.zeros((40, 80), np.int32)
    labels[4:20, 0:20] = 1
    labels[4:20, 40:60] = 2
    labels[24:36, 0:20] = 3
    return labels


def _rows() -> list[dict]:
    return [{"cell_id": 1, "is_cell": 1, "structure_score": 4.2, "cell_source": "adult",
             "area_um2": 80.0},
            {"cell_id": 2, "is_cell": 1, "structure_score": 1.5, "cell_source": "ipsc",
             "area_um2": 80.0},
            {"cell_id": 3, "is_cell": 0, "structure_score": math.nan, "area_um2": 60.0}]


def _event(event_id: int, x_um: float, y_um: float = math.nan, kind: str = "spark",
           amplitude: float = 1.0) -> Event:
    return Event(event_id, kind, 0.0, 10.0, 30.0, x_um, y_um, amplitude, 2.0, 30.0, 10.0, 20.0,
                 stream="s", cell="s")


def test_movie_events_take_the_accepted_cell_under_their_centre() -> None:
    cells = FieldCells("F", _labels(), 0.5, _rows())
    attribution = Attribution.for_stream(cells, StreamKind.MOVIE, (40, 80), 0.5)
    events = [_event(1, 5.0, 5.0), _event(2, 25.0, 5.0), _event(3, 5.0, 15.0),
              _event(4, 35.0, 5.0), _event(5, 500.0, 5.0)]
    attribution.apply(events)
    assert [e.cell for e in events] == ["1", "2", "", "", ""]  # rejected, background, outside
    assert (attribution.rule, attribution.n_attributed, attribution.n_unattributed) == \
        ("position", 2, 3)
    assert attribution.sampled_sizes() == {1: 80.0, 2: 80.0}


def test_field_origin_shifts_the_recording_into_the_field() -> None:
    cells = FieldCells("F", _labels(), 0.5, _rows())
    attribution = Attribution.for_stream(cells, StreamKind.MOVIE, (10, 10), 1.0,
                                         {"field_origin_um": [2.0, 20.0]})
    event = _event(1, 5.0, 3.0)  # (5, 22) µm in the field: cell 2
    attribution.apply([event])
    assert event.cell == "2"
    assert attribution.sampled_sizes() == {1: 0.0, 2: 8.0 * 10.0}  # rows 2-10 µm of cell 2


def test_line_scans_need_the_line_position_or_a_single_cell() -> None:
    cells = FieldCells("F", _labels(), 0.5, _rows())
    by_line = Attribution.for_stream(cells, StreamKind.LINESCAN, (80,), 0.5, {"line_y_um": 5.0})
    events = [_event(1, 5.0), _event(2, 25.0), _event(3, 15.0)]
    by_line.apply(events)
    assert [e.cell for e in events] == ["1", "2", ""] and by_line.rule == "line_y_um"
    assert by_line.sampled_sizes() == {1: 10.0, 2: 10.0}
    blind = Attribution.for_stream(cells, StreamKind.LINESCAN, (80,), 0.5)
    blind.apply(events)
    assert [e.cell for e in events] == ["", "", ""] and blind.rule == "none"
    assert "cannot tell them apart" in blind.reason
    single = FieldCells("G", _labels(), 0.5, _rows()[:1])
    alone = Attribution.for_stream(single, StreamKind.LINESCAN, (80,), 0.5)
    alone.apply(events)
    assert [e.cell for e in events] == ["1", "", ""] and alone.rule == "single_cell"
    assert alone.sampled_sizes() == {1: 10.0}


def test_label_image_without_rows_accepts_every_roi() -> None:
    cells = FieldCells("F", _labels(), 0.5)
    assert cells.accepted_ids == [1, 2, 3] and cells.labels.dtype == np.uint8


def test_per_cell_summary_joins_structure_and_sparks() -> None:
    cells = FieldCells("F", _labels(), 0.5, _rows())
    attribution = Attribution.for_stream(cells, StreamKind.MOVIE, (40, 80), 0.5)
    events = [_event(1, 5.0, 5.0, amplitude=1.0), _event(2, 6.0, 5.0, amplitude=3.0),
              _event(3, 5.0, 5.0, kind="wave"), _event(4, 5.0, 15.0)]
    attribution.apply(events)
    phenotypes = CellPhenotypes()
    phenotypes.add(events)
    rows = {r["cell_id"]: r for r in phenotypes.rows(cells, 2.0, attribution)}
    assert set(rows) == {1, 2} and set(rows[1]) == set(PHENOTYPE_COLUMNS)
    assert (rows[1]["n_sparks"], rows[1]["n_waves"], rows[1]["spark_rate_hz"]) == (2, 1, 1.0)
    assert rows[1]["sparks_per_100um2_s"] == pytest.approx(100.0 / 80.0)
    assert rows[1]["amplitude_dff0"] == 2.0 and rows[1]["structure_score"] == 4.2
    assert rows[2]["n_sparks"] == 0 and rows[2]["cell_source"] == "ipsc"
    assert math.isnan(rows[2]["amplitude_dff0"]) and rows[1]["label"] is None


def test_store_cells_tables_round_trip_and_migration(tmp_path) -> None:
    assert cells_tables.PHENOTYPE_COLUMNS == PHENOTYPE_COLUMNS  # frozen copy kept in step
    old = sqlite3.connect(tmp_path / "old.sqlite")
    migrate(old, target=3)
    old.close()
    store = SqliteStore(tmp_path / "old.sqlite")  # a v3 store gains the cells tables
    labels = _labels()
    rows = [{**r, "frac_zdiscs": 0.25, "bbox": (1, 2, 3, 4)} for r in _rows()]
    record = {"field": "F", "t_s": 1.0, "shape": [40, 80], "pixel_um": 0.5,
              "summary": {"n_candidates": 3, "n_cells": 2, "rois_from": "segmentation"},
              "rows": rows, "labels": labels}
    store.write_cells("img", record)
    store.write_cell_phenotypes("ca", "F", [{"cell_id": 1, "n_sparks": 2, "label": "wt"}])
    stored, pixel_um = store.field_labels("F")
    np.testing.assert_array_equal(stored, labels)
    assert pixel_um == 0.5 and store.field_labels("nope") is None
    cells = store.cells(field="F")
    assert [c["cell_id"] for c in cells] == [1, 2, 3] and cells[0]["features"] == {
        "frac_zdiscs": 0.25}
    assert math.isnan(cells[2]["structure_score"]) and cells[1]["cell_source"] == "ipsc"
    assert store.fields()[0]["n_cells"] == 2
    assert store.cell_phenotypes(stream="ca")[0]["n_sparks"] == 2
    store.open_stream({"stream": "img"})
    store.open_stream({"stream": "img"})  # the id used again: the earlier run is renamed
    assert store.cells(stream="img (run 1)") and not store.cells(stream="img")
    store.close()


def _image_items(stream: str, image: np.ndarray | None, field: str | None,
                 content: str | None = None) -> list:
    header = StartHeader(stream, "image", str(np.dtype(np.int16 if image is None
                                                        else image.dtype)),
                         (64, 64) if image is None else image.shape[-2:], 0.15, IMAGE_DT_MS,
                         field=field, content=content)
    items = [StreamStarted(header)]
    if image is not None:
        data = image.reshape((-1, *image.shape[-2:]))
        items.append(ChunkReceived(ChunkHeader(stream, 1, 0, len(data), 0), data))
    return [*items, StreamStopped(StopHeader(stream, 2, 1), None)]


def test_structure_streams_refuse_bad_images_with_codes() -> None:
    sink = MemorySink()
    structure = StructureStreams(SinkSet([sink]))
    negative = np.full((64, 64), -1, np.int16)
    for items in (_image_items("tiny", np.zeros((16, 64), np.uint16), "F"),
                  _image_items("nan", np.full((64, 64), np.nan, np.float32), "F"),
                  _image_items("rois", np.ones((64, 64), np.uint16), None, "labels"),
                  _image_items("negative", negative, "F", "labels"),
                  _image_items("nothing", None, "F")):
        ended = []
        for item in items:
            assert structure.claims(item)
            ended.append(structure.handle(item))
        assert ended[-1] is True and not any(ended[:-1])
    assert structure.errors_by_code == {"image_shape": 1, "nonfinite_image": 1,
                                        "labels_without_field": 1, "labels_invalid": 1,
                                        "image_missing": 1}
    assert sink.stats["tiny"][-1]["cells_error"] == "image_shape"
    assert sink.opened == sink.closed == ["tiny", "nan", "rois", "negative", "nothing"]
    assert structure.registry.fields == {} and not structure.claims(_image_items("x", None,
                                                                                 "F")[-1])


class _Analyzer:
    """What StructureStreams asks of a stream analyzer."""

    def __init__(self, header: StartHeader) -> None:
        self.info = header  # has dt_ms
        self.stats = SimpleNamespace(frames_final=100)

    @staticmethod
    def new_cell_vote():
        return None


def test_events_before_the_structure_result_keep_the_stream_cell(caplog) -> None:
    structure = StructureStreams(SinkSet([MemorySink()]))
    header = StartHeader("ca", "frames", "uint16", (40, 80), 0.5, 10.0, cell="c7",
                         metadata={"field": "F"}, v=2)  # an older publisher names its field
    analyzer = _Analyzer(header)
    structure.ca_started(header, analyzer)
    early = [_event(1, 5.0, 5.0)]
    early[0].cell = "c7"
    structure.attribute("ca", early)
    assert early[0].cell == "c7" and "no structure result yet" in caplog.text
    structure.registry.put(FieldCells("F", _labels(), 0.5, _rows()))
    late = [_event(2, 25.0, 5.0)]
    structure.attribute("ca", late)
    assert late[0].cell == "2"
    structure.registry.fields.clear()  # evicted from memory: the running stream keeps it
    later = [_event(3, 5.0, 5.0)]
    structure.attribute("ca", later)
    assert later[0].cell == "1"
    assert structure.ca_finished("ca", analyzer)["cell_attribution"]["n_attributed"] == 2
