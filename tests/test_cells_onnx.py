"""ONNX graphs of the cells model (curator, structure network, pattern net): exported, run by
onnxruntime with the same outputs as torch (within ATOL), and torch when a graph is missing,
stale or onnxruntime is not there."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.analyze import analyze_structure
from engine.cells.features import CLASSICAL_FEATURES
from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
from engine.cells.onnx_runtime import GRAPHS, export_cells_onnx
from engine.cli import main
from tests.cells_models import tiny_cells_model

ATOL = 1e-4  # on probabilities and scores (float32 graphs, CPU)
STRUCTURES = {
    "mlp": {"hidden": 8, "members": 2, "score_map": {"rater_sd": 0.25, "keep": 0.05}},
    "crop_cnn": {"kind": "crop_cnn", "hidden": 8, "channels": [4, 8], "members": 2,
                 "patches": {"patch_px": 24, "patch_pixel_um": 0.2, "n_patches": 3}}}


def tiny_model(kind: str) -> CellsModel:
    return tiny_cells_model(STRUCTURES[kind], patterns={"width": 4})


def exported(kind: str, directory) -> tuple[CellsModel, CellsModel]:
    """The tiny model in memory (torch) and loaded from ``directory`` with its graphs."""
    model = tiny_model(kind)
    export_cells_onnx(model, model.save(directory))
    return tiny_model(kind), CellsModel.load(directory)  # the same weights (same seed)


def inputs(model: CellsModel, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    rows = [{name: float(v) for name, v in zip(model.config.structure_features,
                                                rng.normal(size=len(CLASSICAL_FEATURES)),
                                                strict=True)} for _ in range(n)]
    crops = rng.normal(size=(n, 2, 32, 32)).astype(np.float32)
    patches = rng.normal(size=(n, 3, 2, 24, 24)).astype(np.float32) \
        if model.structure_kind == "crop_cnn" else None
    return rows, crops, patches


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
def test_onnxruntime_gives_torch_outputs(kind, tmp_path):
    pytest.importorskip("onnxruntime")
    torch_model, onnx_model = exported(kind, tmp_path / "m")
    assert onnx_model.runtime == "onnxruntime" and torch_model.runtime == "torch"
    assert {p.name for p in tmp_path.joinpath("m").glob("*.onnx")} == set(GRAPHS.values())
    for n in (1, 7):
        rows, crops, patches = inputs(torch_model, n)
        proba = onnx_model.curate(crops, rows)
        assert proba.shape == (n,)
        np.testing.assert_allclose(proba, torch_model.curate(crops, rows), rtol=0, atol=ATOL)
        got, ref = onnx_model.score(rows, patches), torch_model.score(rows, patches)
        assert set(got) == set(ref)
        for key in ref:
            assert got[key].shape == ref[key].shape
            np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=ATOL, err_msg=key)
        np.testing.assert_allclose(got["cell_source"].sum(axis=1), 1.0, atol=1e-5)
    image = np.random.default_rng(2).normal(size=(37, 50)).astype(np.float32)  # odd: any size
    got, ref = onnx_model.pattern_probabilities(image), torch_model.pattern_probabilities(image)
    assert got.shape == ref.shape == (6, 19, 25)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(onnx_model.pattern_classes(image),
                                  torch_model.pattern_classes(image))


def test_a_field_gives_the_same_cells_on_both_runtimes(tmp_path):
    pytest.importorskip("onnxruntime")
    torch_model, onnx_model = exported("mlp", tmp_path / "m")
    params = StructureFieldParams(shape_px=(400, 400), n_cardiomyocytes=2, n_debris=2,
                                  n_fibroblasts=0, n_out_of_focus=0, n_dead=1)
    field = simulate_structure_field(params, seed=21)
    ref, got = (analyze_structure(field.image, field.pixel_um, m)
                for m in (torch_model, onnx_model))
    assert onnx_model.runtime == "onnxruntime" and len(got.rows) == len(ref.rows) > 1
    assert [r["is_cell"] for r in got.rows] == [r["is_cell"] for r in ref.rows]
    numbers = [k for k, v in ref.rows[0].items() if isinstance(v, float)]
    assert {"is_cell_proba", "frac_zdiscs", "oriented_order"} <= set(numbers)  # pattern net's too
    for key in numbers:
        np.testing.assert_allclose([r[key] for r in got.rows], [r[key] for r in ref.rows],
                                   rtol=0, atol=ATOL, err_msg=key)


def test_the_onnxruntime_path_needs_no_torch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    _, onnx_model = exported("mlp", tmp_path / "m")
    field = simulate_structure_field(StructureFieldParams(
        shape_px=(300, 300), n_cardiomyocytes=1, n_debris=1, n_fibroblasts=0,
        n_out_of_focus=0, n_dead=0), seed=3)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch fails
    result = analyze_structure(field.image, field.pixel_um, onnx_model)
    assert onnx_model.runtime == "onnxruntime" and result.rows
    assert np.isfinite(result.rows[0]["frac_background"])


def runtime_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cells networks run on" in r.getMessage()]


@pytest.mark.parametrize("network", ["structure", "patterns"])
def test_torch_when_a_graph_is_missing(network, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    torch_model, _ = exported("mlp", tmp_path / "m")
    (tmp_path / "m" / GRAPHS[network]).unlink()
    model = CellsModel.load(tmp_path / "m")
    rows, crops, _ = inputs(model, 3)
    with caplog.at_level(logging.INFO, logger="engine.cells.model"):
        proba = model.curate(crops, rows)
        model.score(rows)
    assert model.runtime == "torch"
    assert runtime_messages(caplog) == [
        f"cells networks run on torch ({tmp_path / 'm'} has no {GRAPHS[network]})"]
    np.testing.assert_array_equal(proba, torch_model.curate(crops, rows))


def test_a_stale_pattern_graph_falls_back_to_torch_with_the_reason(tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    exported("mlp", tmp_path / "m")
    other = tiny_model("mlp")
    other.weights = {k: v + 0.01 if k.startswith("patterns.") else v
                     for k, v in other.weights.items()}
    export_cells_onnx(other, other.save(tmp_path / "other"))
    stale = tmp_path / "m" / GRAPHS["patterns"]
    stale.write_bytes((tmp_path / "other" / GRAPHS["patterns"]).read_bytes())
    model = CellsModel.load(tmp_path / "m")
    with caplog.at_level(logging.INFO, logger="engine.cells.model"):
        classes = model.pattern_classes(np.zeros((20, 20), np.float32))
    assert model.runtime == "torch" and classes.shape == (10, 10)
    assert runtime_messages(caplog) == [
        f"cells networks run on torch ({stale} was not exported from this weights.safetensors "
        f"(re-export it: castream export {tmp_path / 'm'}))"]


def test_a_model_without_a_pattern_net_has_no_pattern_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tiny_cells_model(STRUCTURES["mlp"])
    paths = export_cells_onnx(model, model.save(tmp_path / "m"))
    assert set(paths) == {"curator", "structure"}
    loaded = CellsModel.load(tmp_path / "m")
    assert loaded.runtime == "onnxruntime" and loaded.pattern_classes(np.zeros((4, 4))) is None


def test_torch_without_onnxruntime(tmp_path, monkeypatch):
    path = tiny_model("mlp").save(tmp_path / "m")
    for file in GRAPHS.values():
        (path / file).write_bytes(b"")  # never opened: onnxruntime is missing
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    model = CellsModel.load(path)
    rows, crops, _ = inputs(model, 2)
    assert model.curate(crops, rows).shape == (2,) and model.runtime == "torch"


def test_graphs_of_other_weights_are_not_run_and_save_refreshes_them(tmp_path):
    pytest.importorskip("onnxruntime")
    exported("mlp", tmp_path / "m")
    other = tiny_model("mlp")
    other.weights = {k: v + 0.01 for k, v in other.weights.items()}
    other.save(tmp_path / "other")
    (tmp_path / "m" / "weights.safetensors").write_bytes(
        (tmp_path / "other" / "weights.safetensors").read_bytes())
    stale = CellsModel.load(tmp_path / "m")
    assert stale.runtime == "torch"
    stale.save(tmp_path / "m")  # the graphs there are re-exported from these weights
    fresh = CellsModel.load(tmp_path / "m")
    assert fresh.runtime == "onnxruntime"
    rows, crops, _ = inputs(fresh, 4)
    np.testing.assert_allclose(fresh.curate(crops, rows), other.curate(crops, rows),
                               rtol=0, atol=ATOL)


def test_castream_export_writes_and_checks_a_cells_model(tmp_path):
    pytest.importorskip("onnxruntime")
    path = tiny_model("crop_cnn").save(tmp_path / "m")
    assert main(["export", str(path)]) == 0
    report = json.loads((path / "metrics.json").read_text())["onnx_export"]
    assert report["passed"] and max(report["max_abs_diff"].values()) <= ATOL
    assert set(report["size_bytes"]) == set(GRAPHS)
    assert CellsModel.load(path).runtime == "onnxruntime"


def test_packaged_model_runs_its_graphs():
    """The packaged graphs were exported from the packaged weights (re-export with
    ``castream export engine/models/default/cells`` after retraining)."""
    pytest.importorskip("onnxruntime")
    assert CellsModel.load(DEFAULT_CELLS_MODEL).runtime == "onnxruntime"
