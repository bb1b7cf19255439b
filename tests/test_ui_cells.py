"""The dashboard's Cells view (AppTest, no browser) on a store filled through the store's own
write API with real rows: a simulated structure field analysed by ``analyze_structure`` (the
packaged cells model), a Ca²⁺ movie stream naming the same field whose events are attributed
by :class:`engine.cells_attribution.Attribution`, and the per-cell phenotypes of
:class:`engine.cells_phenotype.CellPhenotypes`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from scipy import ndimage  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from acquisition.simulate.structure import simulate_structure_field  # noqa: E402
from acquisition.stream_kind import StreamKind
from engine.cells.schema import CELL_COLUMNS  # noqa: E402
from engine.cells_attribution import Attribution, FieldCells  # noqa: E402
from engine.cells_phenotype import CellPhenotypes  # noqa: E402
from engine.events import Event  # noqa: E402
from engine.sinks.store import SqliteStore  # noqa: E402
from tests.cells_scene import FIELD_PARAMS  # noqa: E402
from ui.config import ENV_EVENTS, ENV_RECORD_DIR, ENV_STORE  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
FIELD, IMAGE_STREAM, CA_STREAM = "F1", "actinin", "calcium"
CA_PIXEL_UM, CA_SHAPE = 0.3, (200, 200)


def _spark(event_id: int, y_um: float, x_um: float) -> Event:
    t_ms = 100.0 * event_id
    return Event(event_id=event_id, kind="spark", t_start_ms=t_ms - 10, t_peak_ms=t_ms,
                 t_end_ms=t_ms + 60, x_um=x_um, y_um=y_um, amplitude_dff0=1.0 + 0.1 * event_id,
                 fwhm_um=2.0, fdhm_ms=30.0, rise_ms=8.0, t50_ms=20.0, stream=CA_STREAM,
                 cell=CA_STREAM, score=0.9, significance=12.0)


def _inner_point_um(labels: np.ndarray, cell_id: int, pixel_um: float) -> tuple[float, float]:
    inside = ndimage.distance_transform_edt(labels == cell_id)
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    return y * pixel_um, x * pixel_um


def _write_calcium(store: SqliteStore, cells: FieldCells) -> list[Event]:
    """Two sparks inside each accepted cell and one outside every ROI, attributed by the
    engine's own rules, then the stream's per-cell summary."""
    store.open_stream({"stream": CA_STREAM, "cell": CA_STREAM, "mode": "frames",
                       "shape": list(CA_SHAPE), "pixel_um": CA_PIXEL_UM, "dt_ms": 10.0,
                       "field": FIELD})
    sites = [_inner_point_um(cells.labels, c, cells.pixel_um) for c in cells.accepted_ids]
    events = [_spark(len(sites) * k + i + 1, y, x) for k in range(2)
              for i, (y, x) in enumerate(sites)]
    events.append(_spark(len(events) + 1, 0.5, 0.5))  # a corner of the field: no cell
    attribution = Attribution.for_stream(cells, StreamKind.MOVIE, CA_SHAPE, CA_PIXEL_UM)
    attribution.apply(events)
    phenotypes = CellPhenotypes(None)
    phenotypes.add(events)
    store.write_events(CA_STREAM, events)
    store.write_cell_phenotypes(CA_STREAM, FIELD, phenotypes.rows(cells, 5.0, attribution))
    store.close_stream(CA_STREAM)
    return events


@pytest.fixture(scope="module")
def cells_store(tmp_path_factory) -> dict:
    """The store (and a record dir holding the structure image's recording)."""
    from engine.cells.analyze import analyze_structure
    from engine.cells.model import CellsModel

    folder = tmp_path_factory.mktemp("cells_store")
    field = simulate_structure_field(FIELD_PARAMS, seed=3)
    result = analyze_structure(field.image, field.pixel_um, CellsModel.load())
    cells = FieldCells(FIELD, result.labels, field.pixel_um, result.rows, IMAGE_STREAM,
                       time.time())
    with SqliteStore(folder / "castream.sqlite") as store:
        store.open_stream({"stream": IMAGE_STREAM, "mode": "image",
                           "shape": list(field.image.shape), "pixel_um": field.pixel_um,
                           "field": FIELD})
        store.write_cells(IMAGE_STREAM, {
            "field": FIELD, "t_s": cells.t_s, "shape": list(result.labels.shape),
            "pixel_um": field.pixel_um, "summary": result.summary, "rows": result.rows,
            "labels": result.labels})
        store.close_stream(IMAGE_STREAM)
        events = _write_calcium(store, cells)
    _write_recording(folder / "raw", field.image, field.pixel_um)
    return {"path": folder / "castream.sqlite", "raw": folder / "raw", "rows": result.rows,
            "summary": result.summary, "events": events}


def _write_recording(raw: Path, image: np.ndarray, pixel_um: float) -> None:
    """What serve's recorder leaves for an image stream: ``NAME.tif`` + ``NAME.json``."""
    import tifffile

    raw.mkdir()
    tifffile.imwrite(raw / "actinin.tif", image[None])
    (raw / "actinin.json").write_text(json.dumps({
        "stream": IMAGE_STREAM, "name": "actinin", "tif": "actinin.tif", "mode": "image",
        "shape": list(image.shape), "pixel_um": pixel_um}))


def _cells_view(monkeypatch, store: Path, record_dir: str = "") -> AppTest:
    monkeypatch.setenv(ENV_STORE, str(store))
    monkeypatch.delenv(ENV_EVENTS, raising=False)
    monkeypatch.setenv(ENV_RECORD_DIR, record_dir)
    app = AppTest.from_file(str(APP), default_timeout=30).run()
    app.sidebar.radio(key="mode").set_value("Cells").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _table(app: AppTest, columns: set[str]):
    return next(d.value for d in app.dataframe if columns <= set(d.value.columns))


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def _captions(app: AppTest) -> str:
    return "\n".join(str(c.value) for c in app.caption)


def test_cells_view_shows_the_field_table_and_card(monkeypatch, cells_store):
    rows, summary = cells_store["rows"], cells_store["summary"]
    accepted = [r for r in rows if r["is_cell"] == 1]
    assert len(accepted) >= 2 and len(rows) > len(accepted)  # a rejected ROI too
    app = _cells_view(monkeypatch, cells_store["path"])
    metrics = _metrics(app)
    assert metrics["Candidates"] == str(summary["n_candidates"]) == str(len(rows))
    assert metrics["Cells"] == str(len(accepted))
    assert metrics["Rejected"] == str(len(rows) - len(accepted))
    assert metrics["Ca²⁺ events in cells"] == str(2 * len(accepted))  # not the outside one
    table = _table(app, set(CELL_COLUMNS))
    assert list(table.columns) == [*CELL_COLUMNS, "n_events"]
    assert sorted(table["cell_id"]) == sorted(r["cell_id"] for r in rows)
    assert list(table["is_cell"])[:len(accepted)] == [1] * len(accepted)  # accepted first
    assert set(table.loc[table["is_cell"] == 1, "n_events"]) == {2}
    first = min(accepted, key=lambda r: r["cell_id"])
    assert app.selectbox(key=f"cell_{FIELD}").value == first["cell_id"]
    assert metrics["Score"] == f"{first['structure_score']:.2f}"
    assert metrics["P(cell)"] == f"{first['is_cell_proba']:.2f}"
    assert metrics["Sparks · puffs · waves"] == "2 · 0 · 0"
    assert "label image" in _captions(app)  # no record dir: outlines over the labels
    assert f"stream **{CA_STREAM}**" in _captions(app)
    events = _table(app, {"kind", "t_peak_ms", "stream"})
    assert len(events) == 2 and set(events["stream"]) == {CA_STREAM}
    patterns = _table(app, {"pattern", "fraction"})
    assert len(patterns) == 6 and math.isclose(patterns["fraction"].sum(), 1.0, abs_tol=0.02)


def test_card_follows_the_chosen_roi_and_the_structure_image(monkeypatch, cells_store):
    rejected = next(r for r in cells_store["rows"] if r["is_cell"] == 0)
    app = _cells_view(monkeypatch, cells_store["path"], str(cells_store["raw"]))
    assert "structure image actinin.tif" in _captions(app)
    app.selectbox(key=f"cell_{FIELD}").set_value(rejected["cell_id"]).run()
    assert not app.exception and not app.error
    metrics = _metrics(app)
    assert metrics["Score"] == "—" and metrics["P(cell)"] == f"{rejected['is_cell_proba']:.2f}"
    assert "Rejected by the ROI curator" in _captions(app)
    assert "Sparks · puffs · waves" not in metrics  # rejected ROIs have no phenotype
    assert "No Ca²⁺ event attributed to this ROI." in _captions(app)


def test_card_explains_the_score_on_demand(monkeypatch, cells_store):
    from engine.cells.model import CellsModel

    first = min((r for r in cells_store["rows"] if r["is_cell"] == 1),
                key=lambda r: r["cell_id"])
    app = _cells_view(monkeypatch, cells_store["path"])  # no record dir: no image to occlude
    assert not [t for t in app.toggle if t.key.startswith("explain_")]
    assert "Needs the structure image" in _captions(app)
    app = _cells_view(monkeypatch, cells_store["path"], str(cells_store["raw"]))
    toggle = next(t for t in app.toggle if t.key.startswith("explain_"))
    assert toggle.key.endswith(f"_{first['cell_id']}") and "squares of" not in _captions(app)
    toggle.set_value(True).run()
    assert not app.exception and not app.error
    estimate = CellsModel.load().score([first])["organisation_estimate"][0]
    caption = next(c.value for c in app.caption if "squares of" in c.value)
    assert f"({estimate:.2f})" in caption  # the map is of the engine's own estimate


def _history_page(monkeypatch, store_path, stream: str) -> AppTest:
    """The dashboard on ``store_path`` in History mode, showing ``stream``."""
    monkeypatch.setenv(ENV_STORE, str(store_path))
    monkeypatch.delenv(ENV_EVENTS, raising=False)
    app = AppTest.from_file(str(APP), default_timeout=30).run()
    app.sidebar.radio(key="mode").set_value("History").run()
    app.sidebar.selectbox(key="stream_History").set_value(stream).run()
    return app


def test_live_table_shows_the_attributed_cell(monkeypatch, cells_store):
    app = _history_page(monkeypatch, cells_store["path"], CA_STREAM)
    assert not app.exception and not app.error
    table = _table(app, {"event_id", "cell"})
    by_id = {e.event_id: e.cell for e in cells_store["events"]}
    assert {int(i): c for i, c in zip(table["event_id"], table["cell"], strict=True)} == by_id
    assert "" in by_id.values() and any(c.isdigit() for c in by_id.values())


def test_image_stream_page_points_to_the_cells_view(monkeypatch, cells_store):
    with SqliteStore(cells_store["path"]) as store:  # what serve's image stream samples say
        store.write_stats(IMAGE_STREAM, {"frames_in": 1, "field": FIELD, "cells": {
            "n_candidates": len(cells_store["rows"]), "n_cells": 2}, "cells_error": None})
    app = _history_page(monkeypatch, cells_store["path"], IMAGE_STREAM)
    assert not app.exception and not app.error
    assert "choose **Cells** in the sidebar" in "\n".join(i.value for i in app.info)
    assert not app.metric  # no event numbers for an image


def test_store_without_structure_images_says_how_to_send_one(monkeypatch, tmp_path):
    SqliteStore(tmp_path / "empty.sqlite").close()
    app = _cells_view(monkeypatch, tmp_path / "empty.sqlite")
    assert "No structure image analysed yet" in "\n".join(i.value for i in app.info)
    assert 'pub.start("image"' in app.code[0].value
