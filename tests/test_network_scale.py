"""The network's view of a stream resampled into its trained pixel range (engine.network_scale)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from engine.network_scale import (
    SpatialResampler,
    TemporalResampler,
    _resize,
    network_calibration,
)

RANGE = {"pixel_um": [0.15, 0.25], "dt_ms": [5.0, 8.0]}


@pytest.mark.parametrize(("pixel", "expected"), [
    (0.2, 0.2), (0.15, 0.15), (0.252, 0.252),  # inside (or within the 2 % tolerance): as is
    (0.088, 0.15), (0.3, 0.25),  # outside: the nearest edge
])
def test_network_pixel_is_clipped_into_the_trained_range(pixel, expected):
    assert network_calibration(pixel, RANGE, "pixel_um") == pytest.approx(expected)


def test_no_trained_range_means_no_resampling():
    assert network_calibration(0.05, None, "pixel_um") == 0.05
    assert network_calibration(0.05, {"dt_ms": [1, 2]}, "pixel_um") == 0.05


@pytest.mark.parametrize(("source", "target"), [
    ((4, 256, 240), (4, 512, 512)),  # a window's probabilities back to finer frames and pixels
    ((30, 4, 239), (30, 4, 512)),  # per-frame probabilities back to finer pixels
    ((7, 33), (13, 70)),  # odd factors
    ((5, 9), (5, 9)),  # nothing to do
])
def test_growing_is_skimage_resize_bit_for_bit(source, target):
    """The fast path (sparse interpolation matrices) for axes that only grow gives exactly
    skimage's bilinear ``resize``, which the shrinking direction still uses."""
    array = np.random.default_rng(3).random(source).astype(np.float32) * 7 - 2
    expected = resize(array, target, order=1, mode="edge", anti_aliasing=False,
                      preserve_range=True).astype(np.float32)
    got = _resize(array, target)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_growing_no_frames_gives_no_frames():
    """(skimage's resize raises on an empty array.)"""
    got = _resize(np.zeros((0, 4, 9), np.float32), (0, 4, 20))
    assert got.shape == (0, 4, 20) and got.dtype == np.float32


def test_inside_the_range_the_frames_are_untouched():
    resampler = SpatialResampler((16, 64), 0.2, 0.2)
    frames = np.random.default_rng(0).normal(size=(5, 16, 64)).astype(np.float32)
    assert resampler.identity
    assert resampler.to_network(frames) is frames


def test_fine_pixels_are_shrunk_and_probabilities_come_back_normalized():
    resampler = SpatialResampler((40, 100), 0.088, 0.15)
    assert resampler.network_shape == (23, 59)  # 40 × 0.088 / 0.15 = 23.5 → 23 (round half even)
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(3, 40, 100)).astype(np.float32)
    assert resampler.to_network(frames).shape == (3, 23, 59)
    probs = rng.dirichlet(np.ones(4), size=(3, 23, 59)).transpose(0, 3, 1, 2).astype(np.float32)
    back = resampler.to_stream(probs)
    assert back.shape == (3, 4, 40, 100)
    np.testing.assert_allclose(back.sum(axis=1), 1.0, atol=1e-5)
    assert back.min() >= 0.0


def test_a_spark_keeps_its_physical_width_and_place():
    """A 2-µm Gaussian spark at x = 30 µm on a 0.1-µm line is, for the network at 0.15 µm, a
    Gaussian of the same µm width at the same µm position."""
    pixel, target = 0.1, 0.15
    x_um = np.arange(400) * pixel
    sd_um = 2.0 / 2.355
    line = np.exp(-0.5 * ((x_um - 30.0) / sd_um) ** 2).astype(np.float32)[None]
    resampler = SpatialResampler((400,), pixel, target)
    seen = resampler.to_network(line)[0]
    centres_um = (np.arange(seen.size) + 0.5) * (400 * pixel / seen.size) - pixel / 2
    peak_um = centres_um[np.argmax(seen)]
    assert abs(peak_um - 30.0) < target
    half = centres_um[seen >= seen.max() / 2]
    assert half.max() - half.min() == pytest.approx(2.0, abs=2 * target)


def test_each_frame_is_resampled_on_its_own():
    """Chunking cannot change the result: frames resampled together equal frames resampled in
    two chunks."""
    resampler = SpatialResampler((32, 96), 0.3, 0.2)
    frames = np.random.default_rng(2).normal(size=(10, 32, 96)).astype(np.float32)
    whole = resampler.to_network(frames)
    parts = np.concatenate([resampler.to_network(frames[:3]), resampler.to_network(frames[3:])])
    np.testing.assert_array_equal(whole, parts)


def test_long_frames_are_stretched_for_the_network_and_come_back():
    """14-ms frames for a network trained at 5-8 ms: a 64-frame window is seen as 112 frames
    at 8 ms, and a transient keeps its time in ms."""
    dt, target = 14.0, network_calibration(14.0, RANGE, "dt_ms")
    assert target == 8.0
    resampler = TemporalResampler(64, dt, target)
    assert resampler.network_frames == 112
    t_ms = np.arange(64) * dt
    window = np.exp(-0.5 * ((t_ms - 400.0) / 30.0) ** 2)[:, None, None] * np.ones((1, 4, 8))
    seen = resampler.to_network(window.astype(np.float32))
    assert seen.shape == (112, 4, 8)
    seen_t_ms = ((np.arange(112) + 0.5) * (64 / 112) - 0.5) * dt
    assert abs(seen_t_ms[np.argmax(seen[:, 0, 0])] - 400.0) < target
    probs = np.random.default_rng(3).dirichlet(np.ones(4), size=(112, 4, 8))
    probs = probs.transpose(3, 0, 1, 2).astype(np.float32)
    back = resampler.to_stream(probs)
    assert back.shape == (4, 64, 4, 8)
    np.testing.assert_allclose(back.sum(axis=0), 1.0, atol=1e-5)


def test_frames_inside_the_trained_interval_are_untouched():
    resampler = TemporalResampler(64, 6.8, network_calibration(6.8, RANGE, "dt_ms"))
    window = np.ones((64, 2, 2), np.float32)
    assert resampler.identity and resampler.to_network(window) is window


def test_the_quality_report_says_what_the_network_sees(tmp_path):
    """The detector, the quality report (summary.json, store, dashboard) and its calibration
    warning name the calibration the network sees; a stream inside the trained range, or a
    model that does not resample, gets None."""
    from acquisition.stream_kind import StreamKind
    from engine.analyzer import StreamInfo
    from engine.pipeline import DetectorFactory, EngineConfig
    from engine.quality import quality_warnings
    from tests.fixtures_models import make_tiny_model_dir

    def factory(resample: bool) -> DetectorFactory:
        model = make_tiny_model_dir(tmp_path / f"m{resample}", ndim=3, calibration={
            "pixel_um": 0.2, "dt_ms": 6.8, "resample_pixels": resample, "trained_range": RANGE})
        return DetectorFactory(EngineConfig(model=model, backend="torch", detector="network"))

    def info(pixel_um: float, dt_ms: float) -> StreamInfo:
        return StreamInfo("s", StreamKind.MOVIE, (16, 32), pixel_um, dt_ms)

    outside = factory(True).analyzer(info(0.1, 14.0))
    assert outside.detector.network_calibration == {"pixel_um": 0.15, "dt_ms": 8.0}
    report = outside.quality_report()
    assert report["calibration"]["network_sees"] == {"pixel_um": 0.15, "dt_ms": 8.0}
    warnings = " ".join(quality_warnings(report))
    assert "resampled to 0.15" in warnings and "resampled to 8" in warnings
    assert factory(True).detector(info(0.2, 6.8)).network_calibration is None
    assert factory(False).detector(info(0.1, 14.0)).network_calibration is None


def test_the_experiment_variants_change_only_the_resampling_flags(tmp_path):
    import json

    from offline.experiments.network_resampling import variant_model
    from tests.fixtures_models import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "m", ndim=3, calibration={
        "pixel_um": 0.2, "dt_ms": 6.8, "resample_pixels": True, "trained_range": RANGE})
    shipped = json.loads((model / "config.json").read_text())
    for variant, resample, dt_range in (("off", False, RANGE["dt_ms"]),
                                        ("space", True, [0.0, 1e9]),
                                        ("space+time", True, RANGE["dt_ms"])):
        config = json.loads((variant_model(model, variant, tmp_path) / "config.json").read_text())
        calibration = config.pop("calibration")
        assert calibration["resample_pixels"] is resample
        assert calibration["trained_range"]["dt_ms"] == dt_range
        assert calibration["trained_range"]["pixel_um"] == RANGE["pixel_um"]
        assert config == {k: v for k, v in shipped.items() if k != "calibration"}
    assert json.loads((model / "config.json").read_text()) == shipped
    with pytest.raises(ValueError, match="variant"):
        variant_model(model, "sideways", tmp_path)


def test_the_window_experiment_changes_only_the_window(tmp_path):
    import json

    from offline.experiments.window_geometry import with_geometry
    from tests.fixtures_models import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "m", ndim=2)
    shipped = json.loads((model / "config.json").read_text())
    geometry = {"frames": 96, "hop": 64, "margin_left": 16, "margin_right": 16}
    config = json.loads((with_geometry(model, geometry, tmp_path, "g") / "config.json").read_text())
    assert config["window"]["accurate"] == geometry
    assert config["window"]["low_latency"] == shipped["window"]["low_latency"]
    assert {k: v for k, v in config.items() if k != "window"} == \
        {k: v for k, v in shipped.items() if k != "window"}
    as_is = json.loads((with_geometry(model, None, tmp_path, "n") / "config.json").read_text())
    assert as_is == shipped
    with pytest.raises(ValueError, match="no 'sideways' window"):
        with_geometry(model, geometry, tmp_path, "x", mode="sideways")
