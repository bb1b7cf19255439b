"""Window scheduling and stitching: every frame final exactly once, chunking-independent."""

from __future__ import annotations

import numpy as np
import pytest

from engine.windows import FinalBlock, Stitcher, Window, Windower, WindowGeometry

GEOMETRIES = [
    WindowGeometry(frames=16, hop=4, margin_left=6, margin_right=6),
    WindowGeometry(frames=12, hop=8, margin_left=2, margin_right=2),
    WindowGeometry(frames=10, hop=3, margin_left=5, margin_right=2),
    WindowGeometry(frames=5, hop=5, margin_left=0, margin_right=0),
]


def _chunks(n: int, rng: np.random.Generator) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(min(rng.integers(1, 23), n - sum(sizes))))
    return sizes


def _fake_probs(window: Window) -> np.ndarray:
    """Probabilities that encode the window start and the frame values (to check stitching)."""
    t = window.data.shape[0]
    probs = np.empty((4, t, *window.data.shape[1:]), np.float32)
    probs[0] = window.data
    probs[1] = window.start
    probs[2] = np.arange(t, dtype=np.float32).reshape((t,) + (1,) * (window.data.ndim - 1))
    probs[3] = 0
    return probs


def _run(data: np.ndarray, geo: WindowGeometry, sizes: list[int]) -> tuple[list[FinalBlock], list[Window]]:
    windower = Windower.from_geometry(geo, data.shape[1:])
    stitcher = Stitcher()
    blocks, windows, first = [], [], 0
    for size in sizes:
        for window in windower.push(first, data[first:first + size]):
            windows.append(window)
            blocks += stitcher.add(window, _fake_probs(window))
        first += size
    for window in windower.flush():
        windows.append(window)
        blocks += stitcher.add(window, _fake_probs(window))
    return blocks, windows


@pytest.mark.parametrize("geo", GEOMETRIES)
@pytest.mark.parametrize("n_frames", [1, 7, 16, 17, 61, 100])
def test_every_frame_final_once_and_chunking_independent(geo: WindowGeometry, n_frames: int) -> None:
    rng = np.random.default_rng(n_frames)
    data = rng.normal(size=(n_frames, 3)).astype(np.float32)
    reference = None
    for trial in range(4):
        sizes = [n_frames] if trial == 0 else _chunks(n_frames, rng)
        blocks, windows = _run(data, geo, sizes)
        assert all(w.data.shape == (geo.frames, 3) for w in windows)
        firsts = [b.first for b in blocks]
        assert firsts == sorted(firsts) and blocks[0].first == 0
        assert all(a.stop == b.first for a, b in zip(blocks, blocks[1:], strict=False))
        probs = np.concatenate([b.probs for b in blocks])
        assert probs.shape == (n_frames, 4, 3)
        np.testing.assert_array_equal(probs[:, 0], data)  # each frame from its own window
        if reference is None:
            reference = probs
        np.testing.assert_array_equal(probs, reference)


def test_keep_regions_are_central_in_steady_state() -> None:
    geo = GEOMETRIES[0]
    blocks, windows = _run(np.zeros((200, 2), np.float32), geo, [200])
    for window in windows[1:-1]:
        assert window.keep == slice(geo.margin_left, geo.margin_left + geo.hop)
    assert windows[0].keep == slice(0, geo.margin_left + geo.hop)


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_lookahead(geo: WindowGeometry) -> None:
    """Push one frame at a time; a frame's delay = frames that arrived after it before final."""
    n = 120
    windower = Windower.from_geometry(geo, (1,))
    final_at = {}
    for i in range(n):
        for window in windower.push(i, np.zeros((1, 1), np.float32)):
            for f in range(window.first_final, window.first_final + window.n_final):
                final_at[f] = i
    steady = [final_at[f] - f for f in range(geo.frames, n - geo.frames) if f in final_at]
    assert max(steady) == geo.lookahead_frames == windower.lookahead_frames
    assert min(steady) == geo.min_lookahead_frames == geo.margin_right
    assert windower.lookahead_ms(1.5) == pytest.approx(1.5 * geo.lookahead_frames)


def test_dotti_lookahead() -> None:
    from engine.models import DOTTI_WINDOW

    assert DOTTI_WINDOW.min_lookahead_frames == 112
    assert DOTTI_WINDOW.lookahead_ms(6.8) == pytest.approx(143 * 6.8)


def test_stitcher_out_of_order() -> None:
    geo = GEOMETRIES[1]
    data = np.arange(50, dtype=np.float32).reshape(50, 1)
    windower = Windower.from_geometry(geo, (1,))
    windows = windower.push(0, data) + windower.flush()
    stitcher = Stitcher()
    out = []
    for window in reversed(windows):
        out += stitcher.add(window, _fake_probs(window))
    assert [b.first for b in out] == sorted(b.first for b in out)
    np.testing.assert_array_equal(np.concatenate([b.probs[:, 0] for b in out]), data)
    with pytest.raises(ValueError, match="already finalized"):
        stitcher.add(windows[0], _fake_probs(windows[0]))


def test_errors() -> None:
    with pytest.raises(ValueError, match="margin_left"):
        WindowGeometry(frames=10, hop=4, margin_left=2, margin_right=2)
    windower = Windower(8, 4, 2, 2, (5,))
    with pytest.raises(ValueError, match="contiguous"):
        windower.push(3, np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="frame shape"):
        windower.push(0, np.zeros((2, 4), np.float32))


def test_movie_frames_and_nonzero_origin() -> None:
    geo = WindowGeometry(frames=8, hop=4, margin_left=2, margin_right=2)
    data = np.random.default_rng(1).normal(size=(30, 4, 5)).astype(np.float32)
    windower = Windower.from_geometry(geo, (4, 5), first_index=100)
    stitcher = Stitcher(first_index=100)
    blocks = []
    for start in range(0, 30, 7):
        for window in windower.push(100 + start, data[start:start + 7]):
            blocks += stitcher.add(window, _fake_probs(window))
    for window in windower.flush():
        blocks += stitcher.add(window, _fake_probs(window))
    assert blocks[0].first == 100 and blocks[-1].stop == 130
    np.testing.assert_array_equal(np.concatenate([b.probs[:, 0] for b in blocks]), data)


def test_stitcher_widens_half_precision_probabilities() -> None:
    """A GPU backend may return float16 (half-precision transfer); kept frames are float32 with
    the same values."""
    geo = GEOMETRIES[1]
    data = np.arange(50, dtype=np.float32).reshape(50, 1)
    windower = Windower.from_geometry(geo, (1,))
    stitcher = Stitcher()
    out = []
    for window in windower.push(0, data) + windower.flush():
        out += stitcher.add(window, _fake_probs(window).astype(np.float16))
    probs = np.concatenate([b.probs for b in out])
    assert probs.dtype == np.float32
    np.testing.assert_array_equal(probs[:, 0], data)  # small integers are exact in float16
