"""The cells dashboard section renders a castream cells output folder (AppTest, no browser)."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field  # noqa: E402
from engine.cells.io import write_structure_tiff  # noqa: E402
from engine.cli import main  # noqa: E402


def _page(folder: str) -> None:
    from ui.views.cells import render_cells

    render_cells(folder)


def test_cells_section_shows_counts_table_and_card(tmp_path):
    params = StructureFieldParams(shape_px=(500, 500), n_cardiomyocytes=2, n_debris=2,
                                  n_fibroblasts=0, n_out_of_focus=0, n_dead=1)
    field = simulate_structure_field(params, seed=31)
    path = write_structure_tiff(tmp_path / "field.tif", field.image, field.pixel_um)
    assert main(["cells", str(path), "--out", str(tmp_path / "out")]) == 0
    app = AppTest.from_function(_page, args=(str(tmp_path / "out"),), default_timeout=30).run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    summary = __import__("json").loads((tmp_path / "out" / "summary.json").read_text())
    assert metrics["candidates"] == str(summary["n_candidates"])
    assert metrics["cells"] == str(summary["n_cells"])
    assert len(app.dataframe) == 1 and len(app.dataframe[0].value) == summary["n_candidates"]
    assert app.selectbox and "score" in metrics


def test_missing_folder_is_a_short_error(tmp_path):
    app = AppTest.from_function(_page, args=(str(tmp_path / "none"),)).run()
    assert app.error and "no cells.csv" in app.error[0].value
