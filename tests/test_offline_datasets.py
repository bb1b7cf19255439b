"""Datasets: Dotti-convention folders, window geometry, augmentation before preprocessing."""

import numpy as np
import pytest
import tifffile

from offline import augmentation, datasets, training_windows

MODEL_CONFIG = {"normalization": {"input": "dff0", "clip": [-2.0, 10.0]}}


def test_load_dotti_folder(tmp_path):
    rng = np.random.default_rng(0)
    video = rng.integers(90, 200, (8, 4, 6)).astype(np.uint16)
    classes = np.zeros(video.shape, np.uint8)
    classes[2:4, 1:3, 1:3] = 1
    classes[0, 0, 0] = 4
    tifffile.imwrite(tmp_path / "01_video.tif", video)
    tifffile.imwrite(tmp_path / "01_class_label.tif", classes)
    recs = datasets.load_recordings(tmp_path)  # no event labels: connected components
    assert len(recs) == 1 and recs[0].axes == "TYX"
    assert recs[0].instance_mask.max() == 1 and recs[0].instance_mask[0, 0, 0] == 0
    assert np.array_equal(recs[0].data, video)


def test_windows_have_engine_geometry_and_contain_events():
    rec = datasets.SimulatedSource("linescan", "train", seed=1, params={"duration_s": 2.0}).recording(0)
    sampler = training_windows.WindowSampler((96, 64), MODEL_CONFIG, augmentation.Augmentation(),
                                     windows_per_recording=6, event_fraction=1.0)
    wins = sampler.windows(rec, np.random.default_rng(0))
    assert len(wins) == 6
    for x, y in wins:
        assert x.shape == (96, 64) and y.shape == (96, 64)
        assert x.dtype == np.float32 and np.isfinite(x).all()
        if rec.class_mask.max() > 0:
            assert ((y > 0) & (y < 4)).any()


def test_augmentation_changes_counts_not_labels():
    rec = datasets.SimulatedSource("linescan", "train", seed=2, params={"duration_s": 0.5}).recording(0)
    counts, blank = augmentation.Augmentation(gain=(2.0, 2.0), offset_counts=(10.0, 10.0),
                                          extra_noise_sd=(0.0, 0.0)).apply(rec, np.random.default_rng(0))
    assert blank == rec.blank + 10.0
    expected = (rec.data.astype(np.float32) - rec.blank) * 2 + blank
    assert np.allclose(counts, np.clip(expected, 0, 65535))


def test_window_stream_batches_are_a_function_of_step():
    source = datasets.SimulatedSource("linescan", "train", seed=0, params={"duration_s": 0.6})
    sampler = training_windows.WindowSampler((64, 32), MODEL_CONFIG, augmentation.Augmentation(), 4)
    a = training_windows.WindowStream(source, sampler, batch_size=2, seed=5, pool_recordings=1)
    b = training_windows.WindowStream(source, sampler, batch_size=2, seed=5, pool_recordings=1)
    xa, ya = a.batch(3)
    b.batch(0)
    xb, yb = b.batch(3)
    assert xa.shape == (2, 1, 64, 32) and np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_class_sampling_gives_rare_small_events_their_share_of_windows():
    """One large wave and one small spark: pixel sampling centres nearly every window on the
    wave; class sampling centres about half of them on the spark."""
    data = np.full((64, 256), 200, np.uint16)
    classes = np.zeros(data.shape, np.uint8)
    classes[:, :200] = 2  # wave: 12,800 pixels
    classes[30:34, 240:244] = 1  # spark: 16 pixels
    rec = datasets.LabeledRecording(data=data, class_mask=classes,
                                    instance_mask=(classes > 0).astype(np.int32), axes="TX",
                                    pixel_um=0.2, dt_ms=1.0, blank=0.0, name="toy")
    counts = {}
    for mode in ("pixel", "class"):
        sampler = training_windows.WindowSampler((8, 8), MODEL_CONFIG, None, windows_per_recording=200,
                                         event_fraction=1.0, event_sampling=mode)
        wins = sampler.windows(rec, np.random.default_rng(0))
        counts[mode] = sum(int((y == 1).any()) for _, y in wins)
    assert counts["pixel"] < 10
    assert 70 < counts["class"] < 130


def test_unknown_event_sampling_is_rejected():
    import pytest

    with pytest.raises(ValueError, match="event_sampling"):
        training_windows.WindowSampler((8, 8), MODEL_CONFIG, event_sampling="events")


def test_lazy_recordings_equal_take_and_are_made_when_read():
    from offline.datasets import SimulatedSource

    source = SimulatedSource(kind="linescan", split="test", seed=3, params={"duration_s": 0.3})
    lazy = source.lazy(2)
    assert len(lazy) == 2
    for made, taken in zip(lazy, source.take(2), strict=True):
        np.testing.assert_array_equal(made.data, taken.data)
    assert lazy[-1].name == lazy[1].name and lazy[0] is not lazy[0]  # made anew on each read
    with pytest.raises(IndexError):
        lazy[2]
