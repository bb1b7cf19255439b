"""The cells model directory and the analysis around it, with a tiny untrained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.analyze import analyze_structure
from engine.cells.model import CellsModel, build_network, weights_of
from engine.cells.schema import STRUCTURE_COLUMNS
from engine.models.model_dir import ModelDirError
from tests.cells_models import tiny_cells_model


@pytest.fixture
def tiny_model() -> CellsModel:
    return tiny_cells_model({"hidden": 8}, patterns={"width": 4})


@pytest.fixture(scope="module")
def field():
    params = StructureFieldParams(shape_px=(500, 500), n_cardiomyocytes=2, n_debris=2,
                                  n_fibroblasts=0, n_out_of_focus=0, n_dead=1)
    return simulate_structure_field(params, seed=21)


def test_save_load_gives_the_same_outputs(tiny_model, field, tmp_path):
    first = analyze_structure(field.image, field.pixel_um, tiny_model)
    tiny_model.save(tmp_path / "m")
    loaded = CellsModel.load(tmp_path / "m")
    again = analyze_structure(field.image, field.pixel_um, loaded)
    assert [r["is_cell_proba"] for r in first.rows] == [r["is_cell_proba"] for r in again.rows]
    assert np.array_equal(first.labels, again.labels)
    assert "frac_zdiscs" in first.rows[0]  # pattern fractions from the pattern net
    assert sum(first.rows[0][f"frac_{n}"] for n in ("background", "diffuse", "fibres",
               "disorganized_puncta", "organized_puncta", "zdiscs")) == pytest.approx(1.0)


def test_rejected_rows_are_emptied_and_threshold_is_applied(tiny_model, field):
    result = analyze_structure(field.image, field.pixel_um, tiny_model)
    assert len(result.rows) == result.labels.max() == result.summary["n_candidates"]
    for row in result.rows:
        assert row["is_cell"] == int(row["is_cell_proba"] >= 0.5)
        if not row["is_cell"]:
            assert all(np.isnan(row[c]) if isinstance(row[c], float) else row[c] is None
                       for c in STRUCTURE_COLUMNS)
    tiny_model.thresholds["is_cell"] = 1.0
    none = analyze_structure(field.image, field.pixel_um, tiny_model)
    assert none.summary["n_cells"] == 0


def test_pixel_size_outside_trained_range_lowers_confidence(tiny_model, field):
    inside = analyze_structure(field.image, field.pixel_um, tiny_model)
    outside = analyze_structure(field.image, 0.5, tiny_model)
    assert inside.summary["quality"]["calibration_trust"] == 1.0
    assert outside.summary["quality"]["calibration_trust"] == 0.5
    assert outside.summary["quality"]["warnings"]
    assert all(0.25 <= r["is_cell_proba"] <= 0.75 for r in outside.rows)


def test_bad_model_directories(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "kind": "unet"}))
    with pytest.raises(ModelDirError, match="not a cells model"):
        CellsModel.load(path)
    (path / "config.json").write_text(json.dumps({**config, "structure": {"hidden": 9}}))
    with pytest.raises(ModelDirError, match="do not match"):
        CellsModel.load(path).net("structure")
    with pytest.raises(ModelDirError, match="no config.json"):
        CellsModel.load(tmp_path / "nothing")


def test_ensemble_heads_and_score_map_round_trip(tiny_model, tmp_path):
    from dataclasses import replace

    from engine.cells.model import rater_median_map

    config = replace(tiny_model.config, structure={
        "hidden": 8, "members": 3, "score_map": {"rater_sd": 0.25, "keep": 0.05}})
    nets = {name: build_network(config, name) for name in ("curator", "structure")}
    model = CellsModel(config, weights_of(nets), {"is_cell": 0.5})
    rows = [dict.fromkeys(config.structure_features, float(v)) for v in (0.0, 1.0, -1.0)]
    first = model.score(rows)
    model.save(tmp_path / "m")
    again = CellsModel.load(tmp_path / "m").score(rows)
    assert any(k.startswith("structure.members.2.") for k in model.weights)
    for key in ("structure_score", "organisation_estimate", "directionality"):
        np.testing.assert_allclose(first[key], again[key], rtol=1e-6)
    np.testing.assert_allclose(first["directionality"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(first["structure_score"], rater_median_map(
        first["organisation_estimate"], 0.25, 0.05))
