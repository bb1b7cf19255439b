"""The SarcNet-style crop scorer: its network, its fixed-µm patches, a model directory with
the crop head served through ``castream cells``, and old (MLP-head) directories still loading."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.io import write_structure_tiff
from engine.cells.model import (
    DEFAULT_CELLS_MODEL,
    CellsModel,
    CellsModelConfig,
    build_network,
    weights_of,
)
from engine.cells.patches import cell_patches, patch_centres, with_extra_channels
from engine.cells.schema import read_cells_csv
from engine.cli import main
from tests.cells_models import tiny_cells_config

PATCHES = {"patch_px": 24, "patch_pixel_um": 0.2, "n_patches": 3}


def _config(structure: dict) -> CellsModelConfig:
    return tiny_cells_config(structure)


@pytest.fixture
def crop_model() -> CellsModel:
    import torch

    torch.manual_seed(0)
    config = _config({"kind": "crop_cnn", "hidden": 8, "channels": [4, 8], "members": 2,
                      "patches": PATCHES, "score_map": {"rater_sd": 0.25, "keep": 0.05}})
    nets = {name: build_network(config, name) for name in ("curator", "structure")}
    return CellsModel(config, weights_of(nets), {"is_cell": 0.0})


def test_crop_scorer_shapes():
    import torch

    from engine.cells.networks import CropScorer, HeadsEnsemble

    net = CropScorer(5, (4, 8, 16), hidden=8).eval()
    out = net(torch.randn(3, 4, 2, 24, 24), torch.randn(3, 5))
    assert out["structure_score"].shape == (3,) and out["spread_log"].shape == (3,)
    assert out["sarcomerisation"].shape == out["directionality"].shape == (3, 4)
    assert out["cell_source"].shape == (3, 3)
    assert bool(((out["structure_score"] > 1) & (out["structure_score"] < 5)).all())
    merged = HeadsEnsemble([net, CropScorer(5, (4, 8, 16), hidden=8).eval()])(
        torch.randn(2, 1, 2, 32, 32), torch.randn(2, 5))   # any patch count and side
    assert torch.allclose(torch.softmax(merged["directionality"], 1).sum(1), torch.ones(2))


def _striped_cell(pixel_um: float, period_um: float = 1.9):
    """A 20 × 12 µm rectangle of vertical stripes (the repeat along x) in a dark field."""
    side = int(round(30 / pixel_um))
    y, x = np.mgrid[:side, :side] * pixel_um
    labels = ((np.abs(y - 15) < 6) & (np.abs(x - 15) < 10)).astype(np.int32)
    plane = (10 + 100 * labels * (np.cos(2 * np.pi * x / period_um) > 0.6)).astype(np.float32)
    r, c = np.nonzero(labels)
    row = {"cell_id": 1, "bbox": (r.min(), c.min(), r.max() + 1, c.max() + 1)}
    return plane, labels, row


@pytest.mark.parametrize("pixel_um", [0.1, 0.2])
def test_patches_are_at_a_fixed_pixel_size(pixel_um):
    plane, labels, row = _striped_cell(pixel_um)
    patches = cell_patches(plane, labels, [row], pixel_um, 10.0, 100.0, 48, 0.2, 4)
    assert patches.shape == (1, 4, 2, 48, 48)
    assert patches[0, :, 1].mean() > 0.75  # centres kept away from the ROI's edge
    profile = patches[0, 0, 0].mean(axis=0) - patches[0, 0, 0].mean()
    period_px = 48 / (np.argmax(np.abs(np.fft.rfft(profile))[1:]) + 1)
    assert period_px == pytest.approx(1.9 / 0.2, rel=0.15)  # 9.5 px whatever the input pixel


def test_patch_centres_are_farthest_point_and_nested():
    mask = np.zeros((90, 200), np.float32)
    mask[20:70, 20:180] = 1
    five, three = patch_centres(mask, 5, 24), patch_centres(mask, 3, 24)
    assert five[:3] == three and len(set(five)) == 5
    assert all(mask[y, x] for y, x in five)


@pytest.fixture(scope="module")
def field_tif(tmp_path_factory):
    params = StructureFieldParams(shape_px=(400, 400), pixel_um=0.15, n_cardiomyocytes=2,
                                  n_debris=1, n_dead=0, n_fibroblasts=0, n_out_of_focus=0)
    field = simulate_structure_field(params, seed=3)
    return write_structure_tiff(tmp_path_factory.mktemp("crop") / "field.tif", field.image,
                                field.pixel_um)


def test_crop_model_directory_runs_castream_cells(crop_model, field_tif, tmp_path):
    path = crop_model.save(tmp_path / "model")
    loaded = CellsModel.load(path)
    assert loaded.structure_kind == "crop_cnn"
    assert main(["cells", str(field_tif), "--out", str(tmp_path / "out"), "--model", str(path),
                 "--no-overview"]) == 0
    rows = read_cells_csv(tmp_path / "out" / "cells.csv")
    assert rows and all(1 <= float(r["structure_score"]) <= 5 for r in rows if r["is_cell"])
    assert {r["directionality"] for r in rows} <= {"", "1", "2", "3", "4", 1, 2, 3, 4}
    rows = [dict.fromkeys(loaded.config.structure_features, 0.0)]
    with pytest.raises(ValueError, match="needs the patches"):
        loaded.score(rows)
    patches = np.zeros((1, 3, 2, 24, 24), np.float32)
    np.testing.assert_allclose(loaded.score(rows, patches)["structure_score"],
                               crop_model.score(rows, patches)["structure_score"], rtol=1e-6)


def test_old_model_directories_still_load(crop_model, tmp_path):
    packaged = json.loads((DEFAULT_CELLS_MODEL / "config.json").read_text())
    assert "kind" not in packaged["structure"]           # written before the crop head
    model = CellsModel.load(DEFAULT_CELLS_MODEL)
    assert model.structure_kind == "mlp"
    rows = [dict.fromkeys(model.config.structure_features, 0.0)]
    assert model.score(rows)["structure_score"].shape == (1,)
    old = replace(crop_model.config, structure={"hidden": 8})
    CellsModel(old, weights_of({"structure": build_network(old, "structure")}),
               {"is_cell": 0.5}).save(tmp_path / "old")
    old_rows = [dict.fromkeys(old.structure_features, 1.0)]
    assert CellsModel.load(tmp_path / "old").score(old_rows)["structure_score"].shape == (1,)
    bad = json.loads((tmp_path / "old" / "config.json").read_text())
    bad["structure"]["kind"] = "transformer"
    (tmp_path / "old" / "config.json").write_text(json.dumps(bad))
    with pytest.raises(Exception, match="unknown structure kind"):
        CellsModel.load(tmp_path / "old").net("structure")


def test_band_channel_keeps_the_sarcomere_repeat():
    plane, labels, row = _striped_cell(0.2)
    patches = cell_patches(plane, labels, [row], 0.2, 10.0, 100.0, 48, 0.2, 2)
    assert with_extra_channels(patches, []) is patches
    banded = with_extra_channels(patches, ["band"], 0.2)
    assert banded.shape == (1, 2, 3, 48, 48)
    np.testing.assert_array_equal(banded[:, :, :2], patches)
    band = banded[0, 0, 2]
    assert abs(band.mean()) < 0.1 * band.std()            # the slow background is gone
    profile = band.mean(axis=0)
    period_px = 48 / (np.argmax(np.abs(np.fft.rfft(profile))[1:]) + 1)
    assert period_px == pytest.approx(1.9 / 0.2, rel=0.15)
    assert np.abs(band.mean(axis=1) - band.mean()).max() < 0.2 * np.abs(profile).max()
    with pytest.raises(ValueError, match="unknown patch channels"):
        with_extra_channels(patches, ["orientation"])


def test_crop_model_with_band_channel_runs_castream_cells(field_tif, tmp_path):
    import torch

    from offline.cellstruct.train_crops import crop_structure_config

    torch.manual_seed(0)
    structure = crop_structure_config(3, 24, 0.2, (4, 8), hidden=8, extra=("band",))
    assert structure["patches"]["extra"] == ["band"]
    assert "extra" not in crop_structure_config(3, 24, 0.2)["patches"]
    config = _config({**structure, "members": 2})
    nets = {name: build_network(config, name) for name in ("curator", "structure")}
    path = CellsModel(config, weights_of(nets), {"is_cell": 0.0}).save(tmp_path / "model")
    loaded = CellsModel.load(path)
    rows = [dict.fromkeys(config.structure_features, 0.0)]
    assert loaded.score(rows, np.zeros((1, 3, 3, 24, 24), np.float32))[
        "structure_score"].shape == (1,)
    assert main(["cells", str(field_tif), "--out", str(tmp_path / "out"), "--model", str(path),
                 "--no-overview"]) == 0
    assert read_cells_csv(tmp_path / "out" / "cells.csv")


def test_crop_models_from_separate_runs_merge_into_one_ensemble(crop_model):
    from offline.experiments.cells_crop_members import member_model, merged_model

    merged = merged_model([crop_model, member_model(crop_model, 1)])
    assert merged.config.structure["members"] == 3
    assert merged_model([crop_model]) is crop_model
    rows = [dict.fromkeys(crop_model.config.structure_features, 0.5)] * 2
    patches = np.random.default_rng(0).normal(size=(2, 3, 2, 24, 24)).astype(np.float32)
    scored = {name: m.score(rows, patches)["organisation_estimate"]
              for name, m in (("a", crop_model), ("b", member_model(crop_model, 1)),
                              ("merged", merged))}
    np.testing.assert_allclose(scored["merged"], (2 * scored["a"] + scored["b"]) / 3, rtol=1e-5)
