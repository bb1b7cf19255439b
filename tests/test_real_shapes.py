"""The real-shapes check's construction, on a stand-in library (the real one stays in
../shared/data and never enters the tests): templates become tapered ΔF/F0, keep their size
in µm and ms at another calibration, and every embedded spark is in the ground truth with its
focus subtype and the parameters of its own noise-free shape."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import io as scipy_io

from offline.experiments.real_shapes import (
    LIBRARY_DT_MS,
    LIBRARY_PIXEL_UM,
    load_templates,
    real_shapes_linescan,
    resample,
)


def _spark(n_t: int, n_x: int, amplitude: float) -> np.ndarray:
    t = np.arange(n_t)[:, None] - n_t // 3
    x = np.arange(n_x)[None, :] - n_x // 2
    time = np.where(t < 0, np.exp(-(t / 3.0) ** 2), np.exp(-t / 8.0))
    return 1.0 + amplitude * time * np.exp(-0.5 * (x / 5.0) ** 2)


@pytest.fixture()
def library(tmp_path):
    sparks = {key: np.empty((1, n), object) for key, n in
              (("sparksIn", 2), ("sparksMid", 1), ("sparksOut", 1))}
    masks = {}
    for key, cells in sparks.items():
        for i in range(cells.shape[1]):
            cells[0, i] = _spark(40, 50, 1.5 - 0.4 * i)
        masks["masks" + key[len("sparks"):]] = np.empty_like(cells)
        for i in range(cells.shape[1]):
            masks["masks" + key[len("sparks"):]][0, i] = (cells[0, i] > 1.3).astype(np.uint8)
    path = tmp_path / "library.mat"
    scipy_io.savemat(path, {**sparks, **masks})
    return path


def test_templates_are_tapered_dff0_in_focus_order(library):
    templates = load_templates(library)
    assert [t.subtype for t in templates] == ["real_in", "real_in", "real_mid", "real_out"]
    for template in templates:
        assert template.dff0.min() >= 0.0
        assert template.dff0[0].max() < 0.05 * template.dff0.max()  # tapered rim
        assert 0.9 < template.dff0.max() < 1.5  # smoothing lowers the peak a little


def test_resampling_keeps_the_size_in_um_and_ms(library):
    template = load_templates(library)[0]
    out = resample(template, dt_ms=1.0, pixel_um=0.24)
    assert out.shape[0] == pytest.approx(template.dff0.shape[0] * LIBRARY_DT_MS / 1.0, abs=1)
    assert out.shape[1] == pytest.approx(template.dff0.shape[1] * LIBRARY_PIXEL_UM / 0.24, abs=1)


def test_every_embedded_spark_is_in_the_ground_truth(library):
    templates = load_templates(library)
    recording = real_shapes_linescan(3, templates)
    assert recording.data.dtype == np.uint16 and 0.10 <= recording.pixel_um <= 0.20
    assert 1.0 <= recording.dt_ms <= 2.0
    assert len(recording.events) > 3
    assert {ev["subtype"] for ev in recording.events} <= {"real_in", "real_mid", "real_out"}
    assert int(recording.instance_mask.max()) == len(recording.events)
    for ev in recording.events:  # scaled by 0.5-1.0 from templates of peak ~1.1-1.5
        assert 0.4 < ev["amplitude_dff0"] < 1.6
        assert ev["fwhm_um"] > 0 and ev["fdhm_ms"] > 0
    assert real_shapes_linescan(3, templates).data.tobytes() == recording.data.tobytes()


def test_a_missing_library_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared/data"):
        load_templates(tmp_path / "absent.mat")


def test_the_check_without_the_library_is_one_line_and_exit_1(tmp_path, caplog):
    from offline.experiments.real_shapes import main

    assert main(["--library", str(tmp_path / "absent.mat")]) == 1
    assert "absent.mat not found" in caplog.text
