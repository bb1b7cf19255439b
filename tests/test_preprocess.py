"""Streaming ΔF/F0: chunking independence, blank estimate, baseline robust to events."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blank import DARK_PIXELS, estimate_blank
from engine.preprocess import Preprocessor, network_input, preprocess_recording

BLANK = 100.0
F0 = 120.0  # resting fluorescence above the blank, counts


def _linescan(n_lines: int = 1500, n_px: int = 128, seed: int = 0,
              spark: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Counts (T, X) with a cell on px 16..111 and a 1.0 ΔF/F0 spark at lines 700..740."""
    rng = np.random.default_rng(seed)
    resting = np.zeros(n_px)
    resting[16:112] = F0
    dff0 = np.zeros((n_lines, n_px))
    if spark:
        t = np.arange(n_lines)[:, None]
        x = np.arange(n_px)[None, :]
        profile = np.exp(-0.5 * ((x - 60) / 4.0) ** 2)
        dff0 += 1.0 * profile * ((t >= 700) & (t < 740))
    signal = resting * (1 + dff0) + 2.0
    counts = rng.poisson(signal) + rng.normal(0, 3.0, signal.shape) + BLANK
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16), dff0


def _stream(data: np.ndarray, sizes: list[int], **kwargs) -> np.ndarray:
    pre = Preprocessor(data.shape[1:], dt_ms=1.5, **kwargs)
    out, first, expected_first = [], 0, 0
    for size in sizes:
        index, dff0 = pre.push(data[first:first + size])
        assert index == expected_first
        expected_first += dff0.shape[0]
        out.append(dff0)
        first += size
    index, rest = pre.flush()
    assert index == expected_first
    out.append(rest)
    return np.concatenate(out)


@pytest.mark.parametrize("n_lines", [1500, 100])
def test_chunking_independent(n_lines: int) -> None:
    data, _ = _linescan(n_lines)
    reference = preprocess_recording(data, 1.5)
    assert reference.shape == data.shape and reference.dtype == np.float32
    rng = np.random.default_rng(1)
    for _ in range(3):
        sizes = list(rng.integers(1, 97, size=n_lines))
        out = _stream(data, sizes)
        np.testing.assert_array_equal(out, reference)


def test_blank_estimate() -> None:
    data, _ = _linescan()
    estimate = estimate_blank(data[:200])
    assert estimate.source == DARK_PIXELS
    assert estimate.counts == pytest.approx(BLANK + 2.0, abs=1.5)
    pre = Preprocessor(data.shape[1:], dt_ms=1.5)
    assert pre.blank_report is None
    pre.push(data[:600])
    assert pre.blank == pytest.approx(BLANK + 2.0, abs=1.5)
    assert pre.blank_report["source"] == DARK_PIXELS
    assert pre.blank_report["counts"] == pre.blank
    assert Preprocessor(data.shape[1:], dt_ms=1.5, blank=BLANK).blank_report == {
        "counts": BLANK, "source": "given", "f0_relative_sd": None}


def test_baseline_robust_to_spark_and_dff0_amplitude() -> None:
    data, truth = _linescan()
    pre = Preprocessor(data.shape[1:], dt_ms=1.5, blank=BLANK)
    _, dff0 = pre.push(data[:800])  # the spark (lines 700..740) is inside the history
    np.testing.assert_allclose(pre.baseline[30:100], F0 + 2.0, rtol=0.06)
    peak = dff0[705:740, 58:63].mean()
    assert peak == pytest.approx(truth[705:740, 58:63].mean() * F0 / (F0 + 2.0), abs=0.1)
    quiet = dff0[300:690, 20:108]
    assert abs(float(quiet.mean())) < 0.03


def test_floor_outside_cell() -> None:
    data, _ = _linescan()
    dff0 = preprocess_recording(data, 1.5, blank=BLANK)
    assert np.isfinite(dff0).all()
    assert np.abs(dff0[:, :8]).max() < 10


def test_warmup_emits_later_and_shape_errors() -> None:
    data, _ = _linescan(400)
    pre = Preprocessor((128,), dt_ms=1.5)
    first, out = pre.push(data[:10])
    assert first == 0 and out.shape == (0, 128)
    assert pre.warmup_frames > 10
    with pytest.raises(ValueError, match="frame shape"):
        pre.push(np.zeros((2, 64), np.uint16))


def test_network_input() -> None:
    x = np.array([[-5.0, 0.5, 20.0]], np.float32)
    out = network_input(x, {"input": "dff0", "offset": 0.5, "scale": 2.0, "clip": [-2, 5]})
    np.testing.assert_allclose(out, [[-2.0, 0.0, 5.0]])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="unsupported"):
        network_input(x, {"input": "raw"})


def test_nan_or_infinite_frames_are_refused_in_one_line_naming_the_first_frame() -> None:
    """NaN counts would make the blank, F0 and every ΔF/F0 NaN: no event, and no word why."""
    from acquisition.stream_kind import StreamKind
    from engine.analyzer import StreamAnalyzer, StreamInfo
    from engine.pipeline import DetectorFactory, EngineConfig
    from engine.preprocess import check_finite

    data, _ = _linescan(n_lines=400, spark=False)
    frames = data.astype(np.float32)
    check_finite(0, frames)  # finite float frames pass, and integer frames are not looked at
    check_finite(0, data)
    frames[250, 3:5] = np.nan
    frames[300, 7] = np.inf
    with pytest.raises(ValueError, match=r"frames 200\.\.399 hold 3 NaN or infinite values "
                                         r"\(the first in frame 250\)"):
        check_finite(200, frames[200:])
    info = StreamInfo("nan", StreamKind.LINESCAN, frames.shape[1:], 0.2, 1.5, blank=BLANK)
    analyzer = StreamAnalyzer(info, DetectorFactory(EngineConfig(detector="classical")).detector(
        info))
    analyzer.push(0, frames[:200])
    with pytest.raises(ValueError, match="finite counts"):
        analyzer.push(200, frames[200:])
