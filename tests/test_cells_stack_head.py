"""AMES 3-D heads on z-stacks: the out-of-plane clutter option of the structure simulator
(off = the generator as it was, bit for bit), the z-stack patches, the 3-D network, and its
training entry point on a tiny run."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.zpatches import stack_patches

#: sha256 of (image, labels, pattern_map) of GOLDEN's fields, computed with the generator
#: before the clutter option existed (2-D, and a 3-plane z-stack)
GOLDEN = StructureFieldParams(shape_px=(560, 560), n_cardiomyocytes=3, n_debris=1,
                              n_fibroblasts=1)
GOLDEN_SHA256 = {
    0: "f15cc5851a867f1fe9a12be98ecfe52ed00034ab8bd59e9efd2f015f3179c3f5",
    3: "cd3da035335cfcada84b0786a9d4109c5a11e4df16788a601ce8498dacd854ec"}


def _digest(field) -> str:
    h = hashlib.sha256()
    for array in (field.image, field.labels, field.pattern_map):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("z_slices", [0, 3])
def test_clutter_off_renders_the_generator_as_before_bit_for_bit(z_slices):
    params = GOLDEN.with_(z_slices=z_slices)
    assert params.depth_clutter_probability == 0.0
    field = simulate_structure_field(params, seed=7)
    assert _digest(field) == GOLDEN_SHA256[z_slices]
    assert all("clutter" not in obj for obj in field.objects)


def test_clutter_changes_the_image_but_not_the_cells_truth():
    params = GOLDEN.with_(z_slices=5)
    clean = simulate_structure_field(params, seed=7)
    cluttered = simulate_structure_field(params.with_(depth_clutter_probability=1.0), seed=7)
    assert np.array_equal(clean.labels, cluttered.labels)
    assert np.array_equal(clean.pattern_map, cluttered.pattern_map)
    for a, b in zip(clean.objects, cluttered.objects, strict=True):
        kinds = b.pop("clutter", None)
        assert json.dumps(a, default=str) == json.dumps(b, default=str)
        assert (kinds is not None) == bool(a["is_cell"])
        if kinds is not None:
            assert 1 <= len(kinds) <= 2
    cells = clean.cell_labels() > 0
    added = cluttered.image.astype(float) - clean.image.astype(float)
    # clutter lies over the cells only (elsewhere: another noise draw and blurred edges) ...
    assert added[:, cells].mean() > 20 * abs(added[:, ~cells].mean())
    # ... and is sharpest in an end plane of the stack, not in the middle one
    detail = [float((ndimage.gaussian_laplace(p, 2.0) ** 2)[cells].mean()) for p in added]
    assert max(detail[0], detail[-1]) > 2 * detail[2]


def test_stack_patches_cut_the_same_places_through_every_plane():
    labels = np.zeros((80, 90), np.int32)
    labels[10:70, 15:80] = 1
    stack = np.zeros((3, 80, 90), np.float32)
    stack[1, 30:50, 30:60] = 4.0  # something in the middle plane only
    rows = [{"cell_id": 1, "bbox": (10, 15, 70, 80)}]
    patches = stack_patches(stack, labels, rows, 0.2, 0.0, 1.0, patch_px=24,
                            patch_pixel_um=0.2, n_patches=3)
    assert patches.shape == (1, 3, 2, 3, 24, 24)
    assert patches[0, :, 0, [0, 2]].max() == 0 and patches[0, :, 0, 1].max() == 4.0
    assert np.array_equal(patches[0, :, 1, 0], patches[0, :, 1, 2])  # one mask for all planes
    with pytest.raises(ValueError, match="z-stack must be"):
        stack_patches(stack[0], labels, rows, 0.2, 0.0, 1.0)
    with pytest.raises(ValueError, match="does not match"):
        stack_patches(stack[:, :40], labels, rows, 0.2, 0.0, 1.0)


def test_stack_scorer_shapes_and_gradients():
    import torch

    from engine.cells.networks3d import StackScorer

    torch.manual_seed(0)
    for n_features in (5, 0):
        net = StackScorer(n_features, channels=(4, 8), hidden=8)
        patches = torch.randn(3, 2, 2, 5, 24, 24, requires_grad=True)
        out = net(patches, torch.randn(3, n_features))
        assert out["structure_score"].shape == (3,)
        assert ((out["structure_score"] >= 1) & (out["structure_score"] <= 5)).all()
        assert out["sarcomerisation"].shape == out["directionality"].shape == (3, 4)
        assert out["cell_source"].shape == (3, 3)
        out["directionality"].sum().backward()
        assert patches.grad is not None and patches.grad.abs().sum() > 0
    # the net sees depth: the same planes in another order give other answers
    net = StackScorer(0, channels=(4, 8), hidden=8).eval()
    x = torch.randn(1, 2, 2, 5, 24, 24)
    with torch.inference_mode():
        a, b = net(x, torch.zeros(1, 0)), net(x.flip(3), torch.zeros(1, 0))
    assert not torch.allclose(a["sarcomerisation"], b["sarcomerisation"])
    with pytest.raises(ValueError, match="stack patches must be"):
        net(torch.randn(1, 2, 5, 24, 24), torch.zeros(1, 0))


def _tiny_cells(n: int, seed: int):
    from offline.cellstruct.stack_data import StackCells

    rng = np.random.default_rng(seed)
    targets = {"structure_score": rng.uniform(1, 5, n),
               "sarcomerisation": rng.integers(1, 5, n).astype(float),
               "directionality": rng.integers(1, 5, n).astype(float),
               "source_index": rng.integers(0, 3, n).astype(float),
               "field": np.arange(n) // 2}
    return StackCells(rng.normal(size=(n, 2, 2, 5, 24, 24)).astype(np.float16),
                      rng.normal(size=(n, 23)).astype(np.float32), targets,
                      {f"max_{h}": rng.integers(0, 3, n)
                       for h in ("sarcomerisation", "directionality", "cell_source")})


def test_trained_head_round_trips_through_its_files(tmp_path):
    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
    from engine.cells.stack_head import StackHead
    from offline.cellstruct import train_stack
    from offline.experiments.cells_zstack_3d import compare

    model = CellsModel.load(DEFAULT_CELLS_MODEL)
    train, val = _tiny_cells(8, 0), _tiny_cells(4, 1)
    head = train_stack.train_stack_head(model, train, val, epochs=1, members=2)
    head.save(tmp_path)
    loaded = StackHead.load(tmp_path)
    assert loaded.config["members"] == 2 and loaded.config["trained"]["train_cells"] == 8
    a, b = head.score(val.patches, val.features), loaded.score(val.patches, val.features)
    for name, value in a.items():
        np.testing.assert_allclose(value, b[name], rtol=1e-5, atol=1e-6)
    assert a["directionality"].shape == (4, 4) and np.allclose(a["cell_source"].sum(1), 1)
    result = compare(loaded, val, resamples=20)
    assert result["true_cells"] == 4 and "2-D, maximum projection" in result["directionality"]
    (tmp_path / "stack_head.safetensors").unlink()
    with pytest.raises(ValueError, match="needs both"):
        StackHead.load(tmp_path)


def test_training_entry_point_on_a_tiny_run(tmp_path):
    from engine.cells.stack_head import StackHead
    from offline.cellstruct.train_stack import main

    main(["--out", str(tmp_path / "head"), "--fields", "2", "1", "--epochs", "1",
          "--clutter", "1.0", "--cache", str(tmp_path / "cache")])
    head = StackHead.load(tmp_path / "head")
    trained = head.config["trained"]
    assert trained["train_cells"] > 0 and trained["val_cells"] > 0
    assert trained["fields"] == [2, 1] and trained["clutter"] == 1.0
    assert head.config["onnx_export"]["passed"] and head.runtime == "onnxruntime"  # its graph
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "train-2-zstack5-clutter1-k8.npz", "val-1-zstack5-clutter1-k8-sharp.npz"]


def _untrained_head(z_slices: int = 5):
    """A 3-D head with its (seeded, untrained) weights and the packaged normalization."""
    import torch

    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel, weights_of
    from engine.cells.networks3d import StackScorer
    from engine.cells.stack_head import StackHead
    from offline.cellstruct.train_stack import stack_head_config

    torch.manual_seed(3)
    config = stack_head_config(CellsModel.load(DEFAULT_CELLS_MODEL), channels=(4, 8), hidden=8)
    config["z_slices"], config["patches"]["n_patches"] = z_slices, 2
    net = StackScorer(len(config["structure_features"]), (4, 8), 8)
    with torch.no_grad():  # class logits far apart, so the head's answers differ by cell
        net.sarcomerisation.weight.mul_(50)
    weights = {k.split(".", 1)[1]: v for k, v in weights_of({"net": net}).items()}
    return StackHead(config, weights)


def test_a_model_directory_with_a_3d_head_labels_z_stacks_with_it(tmp_path):
    import shutil

    from engine.cells.analyze import analyze_structure
    from engine.cells.features import field_levels
    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
    from engine.cells.stack_head import stack_head_of, stack_labels

    field = simulate_structure_field(
        GOLDEN.with_(z_slices=5, shape_px=(640, 640), depth_clutter_probability=1.0), seed=11)
    packaged = CellsModel.load(DEFAULT_CELLS_MODEL)
    before = analyze_structure(field.image, field.pixel_um, packaged)
    assert before.summary["ames_heads"] == "2-D" and stack_head_of(DEFAULT_CELLS_MODEL) is None
    assert any(r["is_cell"] for r in before.rows)

    directory = tmp_path / "cells"
    shutil.copytree(DEFAULT_CELLS_MODEL, directory)
    _untrained_head().save(directory)
    model = CellsModel.load(directory)
    after = analyze_structure(field.image, field.pixel_um, model)
    assert after.summary["ames_heads"] == "3-D"
    assert np.array_equal(after.labels, before.labels)
    head = stack_head_of(directory)
    for a, b in zip(before.rows, after.rows, strict=True):
        assert a["is_cell"] == b["is_cell"] and a["structure_score"] == b["structure_score"] \
            or not a["is_cell"]
    accepted = [r for r in after.rows if r["is_cell"]]
    plane = field.image.max(axis=0).astype(np.float32)
    expected = stack_labels(field.image.astype(np.float32), after.labels, accepted,
                            field.pixel_um, head, field_levels(plane, after.labels),
                            model.config.classes)
    assert [{k: r[k] for k in expected[0]} for r in accepted] == expected
    changed = sum(a["sarcomerisation"] != b["sarcomerisation"]
                  for a, b in zip(before.rows, after.rows, strict=True) if b["is_cell"])
    assert changed > 0  # the 3-D head answered, not the 2-D heads

    flat = analyze_structure(field.image.max(axis=0), field.pixel_um, model)
    assert flat.summary["ames_heads"] == "2-D"
    shallow = analyze_structure(field.image[:3], field.pixel_um, model)
    assert shallow.summary["ames_heads"] == "2-D"
    assert any("trained on 5" in w for w in shallow.summary["quality"]["warnings"])


def test_the_projection_control_sees_only_the_maximum_over_the_planes():
    from engine.cells.stack_head import project

    head = _untrained_head()
    rng = np.random.default_rng(4)
    patches = rng.normal(size=(3, 2, 2, 5, 24, 24)).astype(np.float32)
    features = rng.normal(size=(3, len(head.config["structure_features"]))).astype(np.float32)
    assert project(patches).shape == (3, 2, 2, 1, 24, 24)
    shuffled = patches[:, :, :, [3, 0, 4, 1, 2]]
    stack_a, stack_b = head.score(patches, features), head.score(shuffled, features)
    assert not np.allclose(stack_a["sarcomerisation"], stack_b["sarcomerisation"])
    head.config["projection"] = True
    a, b = head.score(patches, features), head.score(shuffled, features)
    np.testing.assert_allclose(a["sarcomerisation"], b["sarcomerisation"], rtol=1e-5)
