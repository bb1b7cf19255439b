"""Occlusion maps of the structure score (``engine.cells.explain``, ``cells --explain``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from engine.cells.analyze import analyze_structure
from engine.cells.explain import explain_cell, occlusion_map, occlusion_squares
from engine.cells.io import write_structure_tiff
from engine.cells.model import CellsModel
from engine.cli import main

PIXEL_UM = 0.2


def test_map_is_where_a_stand_in_scorer_looks():
    """A scorer that reads only the left half of the cell: the map is high there and exactly
    0 where no square reaching the left half ever covered a pixel."""
    rng = np.random.default_rng(0)
    window = rng.normal(5.0, 1.0, (60, 80)).astype(np.float32)
    mask = np.zeros(window.shape, bool)
    mask[10:50, 10:70] = True

    def left_texture(images: np.ndarray) -> np.ndarray:   # organised = varied left half
        return images[:, 10:50, 10:40].std(axis=(1, 2))

    change, estimate, count, side, stride = occlusion_map(window, mask, left_texture, 8, 400)
    assert estimate == pytest.approx(float(window[10:50, 10:40].std()), rel=1e-5)
    assert (side, stride) == (8, 4) and count > 0
    assert np.isnan(change[~mask]).all()
    left, right_core = change[12:48, 12:36], change[10:50, 40 + side:70]
    assert np.nanmean(left) > 0.01 and (left > 0).mean() > 0.9
    assert np.abs(right_core).max() < 1e-6


def test_squares_are_capped_and_cover_the_cell():
    mask = np.zeros((300, 300), bool)
    mask[20:280, 30:270] = True
    corners, side, stride = occlusion_squares(mask, 12, 50)
    assert len(corners) <= 50 and stride > 6 and side >= stride
    covered = np.zeros(mask.shape, bool)
    for y, x in corners:
        covered[max(y, 0):y + side, max(x, 0):x + side] = True
    assert covered[mask].mean() > 0.95
    with pytest.raises(ValueError, match="at least one occlusion"):
        occlusion_squares(mask, 12, 0)
    tiny = np.zeros((40, 40), bool)
    tiny[18:22, 18:22] = True   # an ROI smaller than one square is still occluded
    texture = np.arange(1600, dtype=np.float32).reshape(40, 40) % 7
    change, _, count, _, _ = occlusion_map(texture, tiny,
                                           lambda images: images[:, tiny].std(axis=1), 12)
    assert count >= 1 and np.isfinite(change[tiny]).all() and (change[tiny] > 0).all()


def _half_and_half_field() -> tuple[np.ndarray, np.ndarray]:
    """One 36 × 20 µm cell: aligned Z-discs (1.9 µm) in its left half, scattered puncta in
    its right half, on a dark noisy background."""
    rng = np.random.default_rng(7)
    shape, cell = (260, 300), (slice(80, 180), slice(60, 240))
    labels = np.zeros(shape, np.int32)
    labels[cell] = 1
    signal = np.zeros(shape, np.float32)
    period = 1.9 / PIXEL_UM
    cols = np.arange(cell[1].start, 150)
    signal[cell[0], cols] = (np.cos(2 * np.pi * (cols - 60) / period) > 0.8) * 3.0
    ys = rng.integers(cell[0].start, cell[0].stop, 140)
    xs = rng.integers(150, cell[1].stop, 140)
    signal[ys, xs] = 12.0
    image = ndimage.gaussian_filter(signal, 1.2) + 0.6 * (labels > 0)
    image = 100 + 400 * image + rng.normal(0, 8, shape)
    return image.astype(np.float32), labels


@pytest.fixture(scope="module")
def model():
    return CellsModel.load()


def test_real_model_map_follows_the_evidence(model):
    image, labels = _half_and_half_field()
    result = analyze_structure(image, PIXEL_UM, model, labels)
    row = result.rows[0]
    explanation = explain_cell(image, labels, 1, PIXEL_UM, model, patch_um=4.0,
                               max_occlusions=24)
    # the window measures the cell as the whole field did
    assert explanation.estimate == pytest.approx(
        float(model.score([row])["organisation_estimate"][0]), abs=1e-4)
    assert explanation.n_occlusions <= 24
    change = explanation.change
    box = explanation.box
    middle = 150 - box[1].start
    zdiscs, puncta = np.nanmean(change[:, :middle - 10]), np.nanmean(change[:, middle + 10:])
    # hiding Z-discs lowers the score several times more than hiding puncta does
    assert zdiscs > 0.05 and zdiscs > 3 * abs(puncta)


def test_cli_writes_explanations_only_when_asked(tmp_path, model):
    image, labels = _half_and_half_field()
    path = write_structure_tiff(tmp_path / "field.tif", image, PIXEL_UM)
    tifffile.imwrite(tmp_path / "rois.tif", labels)
    base = ["cells", str(path), "--labels", str(tmp_path / "rois.tif"), "--no-overview",
            "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "explain").exists()
    assert main([*base, "--out", str(tmp_path / "why"), "--explain", "--explain-squares",
                 "6", "--explain-patch-um", "6"]) == 0
    folder = tmp_path / "why" / "explain"
    assert (folder / "cell_1.png").stat().st_size > 1000
    maps = np.load(folder / "maps.npz")
    assert list(maps["cell_ids"]) == [1] and maps["n_occlusions"][0] <= 6
    y0, y1, x0, x1 = maps["cell_1_box"]
    assert maps["cell_1"].shape == (y1 - y0, x1 - x0)
    assert (tmp_path / "why" / "cells.csv").read_text() == \
        (tmp_path / "plain" / "cells.csv").read_text()


@pytest.mark.parametrize(("extra", "message"), [
    (["--explain", "--explain-squares", "0"], "--explain-squares must be at least 1"),
    (["--explain", "--explain-patch-um", "-1"], "--explain-patch-um must be positive"),
    (["--explain-squares", "8"], "need --explain"),
])
def test_bad_explain_options_one_line_error(extra, message, tmp_path, caplog):
    path = tmp_path / "field.tif"
    write_structure_tiff(path, np.ones((64, 64), np.float32), PIXEL_UM)
    with caplog.at_level(logging.ERROR, logger="castream"):
        assert main(["cells", str(path), "--out", str(tmp_path / "out"), *extra]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "out").exists()
