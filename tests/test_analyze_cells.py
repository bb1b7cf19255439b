"""``castream analyze MOVIE --cells cells.tif``: the offline twin of serve's attribution, from
the files ``castream cells`` writes, with the per-cell summary in ``summary.json``."""

from __future__ import annotations

import csv
import json
import math

import pytest
import tifffile

from engine.cells.io import read_field_cells, write_structure_tiff
from engine.cells_phenotype import PHENOTYPE_COLUMNS
from engine.cli import main
from tests.cells_scene import MOVIE_BLANK, MOVIE_DT_MS, MOVIE_PIXEL_UM, detected_id_at, field_scene


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    scene = field_scene(seed=3)
    root = tmp_path_factory.mktemp("field")
    write_structure_tiff(root / "actinin.tif", scene.field.image, scene.field.pixel_um)
    tifffile.imwrite(root / "calcium.tif", scene.movie, imagej=True,
                     resolution=(1 / MOVIE_PIXEL_UM, 1 / MOVIE_PIXEL_UM),
                     metadata={"axes": "TYX", "unit": "micron", "finterval": MOVIE_DT_MS / 1e3})
    assert main(["cells", str(root / "actinin.tif"), "--out", str(root / "cells"),
                 "--no-overview"]) == 0
    return scene, root


def test_events_carry_cell_ids_and_summary_joins_structure(files, tmp_path, capsys) -> None:
    scene, root = files
    assert main(["analyze", str(root / "calcium.tif"), "--out", str(tmp_path), "--cells",
                 str(root / "cells" / "cells.tif"), "--detector", "classical", "--blank",
                 str(MOVIE_BLANK), "--no-progress"]) == 0
    field = read_field_cells(root / "cells" / "cells.tif")
    assert field.pixel_um == pytest.approx(scene.field.pixel_um)  # from cells.tif's tags
    expected = {obj: detected_id_at(field.labels, field.pixel_um, y, x)
                for obj, y, x in scene.sites}
    with (tmp_path / "events.csv").open() as handle:
        events = list(csv.DictReader(handle))
    assert len(events) == scene.n_sparks
    for event in events:
        obj = min(scene.sites, key=lambda s: math.hypot(s[1] - float(event["y_um"]),
                                                        s[2] - float(event["x_um"])))[0]
        assert event["cell"] == str(expected[obj])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cell_attribution"]["n_attributed"] == scene.n_sparks
    rows = {r["cell_id"]: r for r in summary["cells"]}
    assert set(rows) == set(expected.values())
    structure = {r["cell_id"]: r for r in field.rows}
    for cell_id, row in rows.items():
        assert set(row) == set(PHENOTYPE_COLUMNS) and row["n_sparks"] == 2
        assert row["structure_score"] == pytest.approx(structure[cell_id]["structure_score"],
                                                       rel=1e-5)
        assert row["cell_source"] == structure[cell_id]["cell_source"]
    assert "cells of field actinin" in capsys.readouterr().out


def test_cells_errors_are_one_line(files, tmp_path, caplog) -> None:
    _, root = files
    movie = str(root / "calcium.tif")
    assert main(["analyze", movie, "--out", str(tmp_path), "--cells",
                 str(root / "nope.tif")]) == 1
    assert "no such cells label image file" in caplog.text
    assert main(["analyze", movie, "--out", str(tmp_path), "--line-y-um", "3"]) == 1
    assert "need --cells" in caplog.text
    tifffile.imwrite(tmp_path / "bare.tif", tifffile.imread(root / "cells" / "cells.tif"))
    assert main(["analyze", movie, "--out", str(tmp_path / "o"), "--cells",
                 str(tmp_path / "bare.tif")]) == 1
    assert "pass --cells-pixel-um" in caplog.text
