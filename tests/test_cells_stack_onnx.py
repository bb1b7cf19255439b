"""The ONNX graph of the AMES 3-D head (``stack_head.onnx``): exported, run by onnxruntime with
the same outputs as torch (within ATOL), torch when it is missing, stale or onnxruntime is not
there, and the engine's z-stack path on a model directory that holds it."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.stack_head import StackHead
from engine.cells.stack_onnx import GRAPH_FILE, export_stack_onnx
from tests.cells_models import tiny_cells_model

ATOL = 1e-4  # on probabilities and scores (float32 graphs, CPU), as tests/test_cells_onnx.py
HEADS = {"features": {}, "no_features": {"use_features": False},
         "ensemble": {"members": 2}, "projection": {"projection": True}}


def tiny_head(use_features: bool = True, members: int = 1, projection: bool = False,
              seed: int = 0, model=None) -> StackHead:
    """A seeded, untrained 3-D head (2 patches of 24 px through 3 planes) with the feature
    normalization of ``model`` (default: a tiny cells model's)."""
    import torch

    from engine.cells.model import weights_of
    from engine.cells.networks import HeadsEnsemble
    from engine.cells.networks3d import StackScorer
    from offline.cellstruct.train_stack import stack_head_config

    config = stack_head_config(model or tiny_cells_model({"hidden": 8}), channels=(4, 8),
                               hidden=8, use_features=use_features, members=members,
                               projection=projection)
    config["z_slices"] = 3
    config["patches"].update(patch_px=24, n_patches=2)
    torch.manual_seed(seed)
    n_features = len(config["structure_features"]) if use_features else 0
    nets = [StackScorer(n_features, (4, 8), 8) for _ in range(members)]
    for net in nets:
        with torch.no_grad():  # class logits far apart, so the answers differ by cell
            net.sarcomerisation.weight.mul_(20)
    net = nets[0] if members == 1 else HeadsEnsemble(nets)
    return StackHead(config, {k.split(".", 1)[1]: v
                              for k, v in weights_of({"net": net.eval()}).items()})


def inputs(head: StackHead, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = int(head.config["z_slices"])
    n_features = len(head.config["structure_features"]) if head.config["use_features"] else 0
    return (rng.normal(size=(n, 2, 2, z, 24, 24)).astype(np.float32),
            rng.normal(size=(n, n_features)).astype(np.float32))


def exported(directory, **kwargs) -> tuple[StackHead, StackHead]:
    """The tiny head in memory (torch) and loaded from ``directory`` with its graph."""
    head = tiny_head(**kwargs)
    export_stack_onnx(head, head.save(directory))
    return tiny_head(**kwargs), StackHead.load(directory)  # the same weights (same seed)


def runtime_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "3-D head runs on" in r.getMessage()]


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_onnxruntime_gives_torch_outputs(kind, tmp_path):
    pytest.importorskip("onnxruntime")
    torch_head, onnx_head = exported(tmp_path / "h", **HEADS[kind])
    assert onnx_head.runtime == "onnxruntime" and torch_head.runtime == "torch"
    for n in (1, 7):
        patches, features = inputs(torch_head, n)
        got = onnx_head.score(patches, features, batch=4)  # several batches and a short one
        ref = torch_head.score(patches, features, batch=4)
        assert set(got) == set(ref) == {"structure_score", "sarcomerisation",
                                        "directionality", "cell_source"}
        for key in ref:
            assert got[key].shape == ref[key].shape and got[key].shape[0] == n
            np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=ATOL, err_msg=key)
        np.testing.assert_allclose(got["cell_source"].sum(axis=1), 1.0, atol=1e-5)
    empty = onnx_head.score(*inputs(torch_head, 0))
    assert empty["structure_score"].shape == (0,) and empty["cell_source"].shape == (0, 3)


def test_a_stale_graph_is_not_run_and_save_refreshes_it(tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    exported(tmp_path / "h")
    other = tiny_head()
    other.weights = {k: v + 0.01 if v.dtype.kind == "f" else v for k, v in other.weights.items()}
    other.save(tmp_path / "other")
    (tmp_path / "h" / "stack_head.safetensors").write_bytes(
        (tmp_path / "other" / "stack_head.safetensors").read_bytes())
    with caplog.at_level(logging.INFO, logger="engine.cells.stack_head"):
        stale = StackHead.load(tmp_path / "h")
    graph = tmp_path / "h" / GRAPH_FILE
    assert stale.runtime == "torch"
    assert runtime_messages(caplog) == [
        f"3-D head runs on torch ({graph} was not exported from this stack_head.safetensors "
        f"(re-export it: castream export {tmp_path / 'h'}))"]
    patches, features = inputs(other, 3)
    ref = other.score(patches, features)
    for key, value in stale.score(patches, features).items():
        np.testing.assert_array_equal(value, ref[key])  # torch on the new weights
    stale.save(tmp_path / "h")  # the graph there is re-exported from these weights
    fresh = StackHead.load(tmp_path / "h")
    assert fresh.runtime == "onnxruntime"
    for key, value in fresh.score(patches, features).items():
        np.testing.assert_allclose(value, ref[key], rtol=0, atol=ATOL, err_msg=key)


def test_torch_when_the_graph_is_missing_or_takes_other_patches(tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    exported(tmp_path / "h")
    config_path = tmp_path / "h" / "stack_head.json"
    config = json.loads(config_path.read_text())
    config["patches"]["n_patches"] = 4
    config_path.write_text(json.dumps(config))
    with caplog.at_level(logging.INFO, logger="engine.cells.stack_head"):
        assert StackHead.load(tmp_path / "h").runtime == "torch"
        (tmp_path / "h" / GRAPH_FILE).unlink()
        assert StackHead.load(tmp_path / "h").runtime == "torch"
    first, second = runtime_messages(caplog)
    assert "takes patches (2, 2, 3, 24, 24), stack_head.json (4, 2, 3, 24, 24)" in first
    assert second == f"3-D head runs on torch ({tmp_path / 'h'} has no {GRAPH_FILE})"


def test_torch_without_onnxruntime(tmp_path, monkeypatch):
    path = tiny_head().save(tmp_path / "h")
    (path / GRAPH_FILE).write_bytes(b"")  # never opened: onnxruntime is missing
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    head = StackHead.load(path)
    assert head.runtime == "torch"
    assert head.score(*inputs(head, 2))["directionality"].shape == (2, 4)


def test_castream_export_writes_and_checks_the_3d_head(tmp_path):
    pytest.importorskip("onnxruntime")
    from engine.cli import main

    path = tiny_cells_model({"hidden": 8}).save(tmp_path / "m")
    tiny_head(members=2).save(path)
    assert main(["export", str(path)]) == 0
    report = json.loads((path / "metrics.json").read_text())["onnx_export"]
    assert report["passed"] and report["max_abs_diff"]["stack_head"] <= ATOL
    assert report["size_bytes"]["stack_head"] == (path / GRAPH_FILE).stat().st_size
    assert json.loads((path / "stack_head.json").read_text())["onnx_export"]["passed"]
    assert StackHead.load(path).runtime == "onnxruntime"
    alone = tiny_head().save(tmp_path / "alone")  # train_stack --out: no cells model there
    assert main(["export", str(alone)]) == 0
    assert StackHead.load(alone).runtime == "onnxruntime"


def test_the_engine_labels_z_stacks_with_the_graph_without_torch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from engine.cells.analyze import analyze_structure
    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
    from engine.cells.stack_head import stack_head_of

    field = simulate_structure_field(StructureFieldParams(
        shape_px=(420, 420), n_cardiomyocytes=2, n_debris=1, n_fibroblasts=0,
        n_out_of_focus=0, n_dead=0, z_slices=3, depth_clutter_probability=1.0), seed=5)
    with_torch, with_graph = tmp_path / "torch", tmp_path / "onnx"
    for directory in (with_torch, with_graph):
        shutil.copytree(DEFAULT_CELLS_MODEL, directory)
        tiny_head(model=CellsModel.load(DEFAULT_CELLS_MODEL)).save(directory)
    export_stack_onnx(StackHead.load(with_graph))
    ref = analyze_structure(field.image, field.pixel_um, CellsModel.load(with_torch))
    assert stack_head_of(with_torch).runtime == "torch"
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch fails
    model = CellsModel.load(with_graph)
    got = analyze_structure(field.image, field.pixel_um, model)
    assert model.runtime == "onnxruntime" and stack_head_of(with_graph).runtime == "onnxruntime"
    assert got.summary["ames_heads"] == ref.summary["ames_heads"] == "3-D"
    assert any(r["is_cell"] for r in got.rows)
    keys = ("is_cell", "sarcomerisation", "directionality", "cell_source")
    assert [[r[k] for k in keys] for r in got.rows] == [[r[k] for k in keys] for r in ref.rows]
