"""``castream cells``: the output contract, user ROIs, z-stacks and bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tifffile

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.io import write_structure_tiff
from engine.cells.schema import CELL_COLUMNS, STRUCTURE_COLUMNS, read_cells_csv
from engine.cli import main

PARAMS = StructureFieldParams(shape_px=(700, 700), pixel_um=0.15, n_cardiomyocytes=3,
                              n_debris=3, n_dead=1, n_fibroblasts=1, n_out_of_focus=0)


@pytest.fixture(scope="module")
def field():
    return simulate_structure_field(PARAMS, seed=11)


@pytest.fixture(scope="module")
def field_tif(field, tmp_path_factory):
    return write_structure_tiff(tmp_path_factory.mktemp("cells") / "field.tif", field.image,
                                field.pixel_um)


def _run(*argv) -> int:
    return main(["cells", *map(str, argv)])


def test_contract_header_labels_and_rejected_rows(field, field_tif, tmp_path):
    assert _run(field_tif, "--out", tmp_path) == 0
    header = (tmp_path / "cells.csv").read_text().splitlines()[0]
    assert header == ",".join(CELL_COLUMNS)
    rows = read_cells_csv(tmp_path / "cells.csv")
    labels = tifffile.imread(tmp_path / "cells.tif")
    assert labels.shape == field.image.shape and labels.dtype == np.int32
    assert {int(r["cell_id"]) for r in rows} == set(np.unique(labels)) - {0}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_candidates"] == len(rows) and summary["calibration_from"] == "metadata"
    assert summary["pixel_um"] == pytest.approx(0.15, rel=1e-6)
    assert (tmp_path / "overview.png").stat().st_size > 10_000
    accepted = [r for r in rows if r["is_cell"] == "1"]
    rejected = [r for r in rows if r["is_cell"] == "0"]
    assert accepted and rejected and len(accepted) + len(rejected) == len(rows)
    for row in rejected:
        assert all(row[name] == "" for name in STRUCTURE_COLUMNS)
        assert float(row["is_cell_proba"]) < summary["is_cell_threshold"]
    for row in accepted:
        assert 1 <= float(row["structure_score"]) <= 5
        assert row["sarcomerisation"] in "1234" and row["directionality"] in "1234"
        assert row["cell_source"] in ("adult", "neonatal", "ipsc")
        if row["orientation_order"]:
            assert 0 <= float(row["orientation_order"]) <= 1
        ys, xs = np.nonzero(labels == int(row["cell_id"]))
        assert float(row["x_um"]) == pytest.approx(xs.mean() * 0.15, abs=1e-3)
        assert float(row["y_um"]) == pytest.approx(ys.mean() * 0.15, abs=1e-3)


def test_true_cells_found_and_accepted(field, field_tif, tmp_path):
    assert _run(field_tif, "--out", tmp_path, "--no-overview") == 0
    rows = {int(r["cell_id"]): r for r in read_cells_csv(tmp_path / "cells.csv")}
    labels = tifffile.imread(tmp_path / "cells.tif")
    truth = field.cell_labels()
    for obj in (o for o in field.objects if o["is_cell"]):
        inside = labels[truth == obj["object_id"]]
        best = np.bincount(inside[inside > 0]).argmax()
        iou = np.count_nonzero((labels == best) & (truth == obj["object_id"])) / \
            np.count_nonzero((labels == best) | (truth == obj["object_id"]))
        assert iou >= 0.5
        assert rows[int(best)]["is_cell"] == "1"
        measured = rows[int(best)]["sarcomere_length_um"]
        if measured:
            assert abs(float(measured) / obj["sarcomere_length_um"] - 1) < 0.05


def test_given_labels_keep_their_ids(field, field_tif, tmp_path):
    given = np.zeros(field.labels.shape, np.int32)
    new_ids = {}
    for k, obj in enumerate(field.objects):
        new_ids[obj["object_id"]] = 1000 + 37 * k
        given[field.labels == obj["object_id"]] = new_ids[obj["object_id"]]
    tifffile.imwrite(tmp_path / "rois.tif", given)
    assert _run(field_tif, "--out", tmp_path / "out", "--labels", tmp_path / "rois.tif") == 0
    rows = read_cells_csv(tmp_path / "out" / "cells.csv")
    assert sorted(int(r["cell_id"]) for r in rows) == sorted(new_ids.values())
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "cells.tif"), given)
    by_id = {int(r["cell_id"]): r for r in rows}
    for obj in field.objects:
        if obj["kind"] in ("debris", "dead"):
            assert by_id[new_ids[obj["object_id"]]]["is_cell"] == "0"


def test_zstack_and_pixel_flag(tmp_path):
    field = simulate_structure_field(PARAMS.with_(z_slices=5, n_debris=1), seed=3)
    tifffile.imwrite(tmp_path / "stack.tif", field.image)  # no calibration in the file
    assert _run(tmp_path / "stack.tif", "--out", tmp_path / "out", "--pixel-um", 0.15) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["calibration_from"] == "flags" and summary["input_shape"] == [5, 700, 700]
    assert tifffile.imread(tmp_path / "out" / "cells.tif").shape == (700, 700)
    assert summary["n_cells"] >= 1


def test_noise_only_field_has_no_rows(tmp_path):
    noise = np.random.default_rng(0).poisson(100, (300, 300)).astype(np.uint16)
    write_structure_tiff(tmp_path / "noise.tif", noise, 0.15)
    assert _run(tmp_path / "noise.tif", "--out", tmp_path / "out") == 0
    assert read_cells_csv(tmp_path / "out" / "cells.csv") == []
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_candidates"] == 0 and summary["quality"]["warnings"]


@pytest.mark.parametrize(("case", "message"), [
    ("one_d", "must be 2-D"), ("nan", "non-finite"), ("labels", "does not match"),
    ("no_pixel", "--pixel-um"), ("missing", "no such structure image"),
    ("not_tiff", "cannot read"),
])
def test_bad_input_one_line_error(case, message, tmp_path, caplog):
    path = tmp_path / "in.tif"
    argv = [path, "--out", tmp_path / "out"]
    if case == "one_d":
        tifffile.imwrite(path, np.arange(100, dtype=np.uint16))
        argv += ["--pixel-um", 0.15]
    elif case == "nan":
        image = np.ones((64, 64), np.float32)
        image[3, 4] = np.nan
        tifffile.imwrite(path, image)
        argv += ["--pixel-um", 0.15]
    elif case == "labels":
        tifffile.imwrite(path, np.ones((64, 64), np.uint16))
        tifffile.imwrite(tmp_path / "rois.tif", np.ones((64, 65), np.int32))
        argv += ["--pixel-um", 0.15, "--labels", tmp_path / "rois.tif"]
    elif case == "no_pixel":
        tifffile.imwrite(path, np.ones((64, 64), np.uint16))
    elif case == "not_tiff":
        path.write_bytes(b"not a tiff at all")
    with caplog.at_level(logging.ERROR, logger="castream"):
        assert _run(*argv) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]


def test_results_are_not_replaced_unless_asked(tmp_path, caplog):
    noise = np.random.default_rng(1).poisson(100, (200, 200)).astype(np.uint16)
    write_structure_tiff(tmp_path / "noise.tif", noise, 0.15)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{\"of\": \"castream analyze\"}")  # another run's result
    assert _run(tmp_path / "noise.tif", "--out", out) == 1
    assert "already holds results of an earlier run (summary.json)" in caplog.text
    assert json.loads((out / "summary.json").read_text()) == {"of": "castream analyze"}
    assert not (out / "cells.csv").exists()
    assert _run(tmp_path / "noise.tif", "--out", out, "--force") == 0
    assert json.loads((out / "summary.json").read_text())["n_candidates"] == 0
