"""FrameRing: frames by absolute index, released from the old end, bounded storage."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.simulate import LinescanParams, MovieParams, simulate_linescan, simulate_movie
from acquisition.stream_kind import StreamKind
from engine.analyzer import PREVIEW_LINES, StreamAnalyzer, StreamInfo
from engine.detectors import ClassicalStreamDetector
from engine.frame_ring import FrameRing


def _stream(n: int, shape: tuple[int, ...] = (3, 5), seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _chunks(n: int, rng: np.random.Generator, largest: int) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(min(rng.integers(1, largest + 1), n - sum(sizes))))
    return sizes


def test_known_answers_from_an_offset_start():
    ring = FrameRing((2,), np.int64, first=100)
    assert (ring.first, ring.stop, len(ring)) == (100, 100, 0)
    ring.append(100, np.arange(10).reshape(5, 2))
    ring.append(105, np.arange(10, 16).reshape(3, 2))
    assert (ring.first, ring.stop, len(ring)) == (100, 108, 8)
    np.testing.assert_array_equal(ring.read(104, 106), [[8, 9], [10, 11]])
    ring.release(103)
    assert (ring.first, ring.stop) == (103, 108)
    np.testing.assert_array_equal(ring.held(), [[6, 7], [8, 9], [10, 11], [12, 13], [14, 15]])
    ring.release(101)  # already released: nothing changes
    assert ring.first == 103
    assert ring.read(105, 105).shape == (0, 2)
    ring.release(108)
    assert len(ring) == 0 and ring.held().shape == (0, 2)


def test_appended_frames_take_the_ring_dtype():
    ring = FrameRing((4,), bool)
    ring.append(0, np.array([[0, 1, 2, 0]]))
    assert ring.held().dtype == bool
    np.testing.assert_array_equal(ring.held(), [[False, True, True, False]])


def test_errors_name_the_frames():
    ring = FrameRing((3,))
    ring.append(0, np.zeros((10, 3)))
    ring.release(4)
    with pytest.raises(ValueError, match=r"frames \[2, 4\) were released.*oldest held frame: 4"):
        ring.read(2, 6)
    with pytest.raises(ValueError, match=r"frames \[10, 12\) not received yet.*next frame: 10"):
        ring.read(8, 12)
    with pytest.raises(ValueError, match=r"reversed frame range \[6, 5\)"):
        ring.read(6, 5)
    with pytest.raises(ValueError, match="expected frame 10, got frame 11"):
        ring.append(11, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="expected frame 10, got frame 9"):
        ring.append(9, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"frame shape \(4,\) != \(3,\)"):
        ring.append(10, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="cannot release up to frame 11"):
        ring.release(11)
    assert (ring.first, ring.stop) == (4, 10)  # a refused call changes nothing


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reads_do_not_depend_on_chunk_sizes(seed):
    """Random append sizes and release points give the frames of the stream at every read."""
    data = _stream(600, seed=seed)
    rng = np.random.default_rng(seed)
    ring, lag = FrameRing(data.shape[1:]), int(rng.integers(1, 40))
    for size in _chunks(len(data), rng, largest=50):
        ring.append(ring.stop, data[ring.stop:ring.stop + size])
        start = int(rng.integers(ring.first, ring.stop + 1))
        np.testing.assert_array_equal(ring.read(start, ring.stop), data[start:ring.stop])
        ring.release(max(0, ring.stop - lag))
        np.testing.assert_array_equal(ring.held(), data[ring.first:ring.stop])
    assert ring.stop == len(data)


def test_a_view_writes_through_until_the_next_append():
    ring = FrameRing((2,), np.int32)
    ring.append(0, np.zeros((4, 2), np.int32))
    ring.read(1, 3)[:] = 7
    np.testing.assert_array_equal(ring.held()[:, 0], [0, 7, 7, 0])


def test_storage_stays_bounded_on_a_long_stream():
    """Held frames bounded => storage bounded, and compaction keeps the frames intact."""
    ring, lag, stop = FrameRing((8,)), 100, 0
    rng = np.random.default_rng(3)
    most = 0
    while stop < 200_000:
        size = int(rng.integers(1, 60))
        ring.append(stop, np.full((size, 8), stop, np.float32) + np.arange(size)[:, None])
        stop += size
        ring.release(stop - lag)
        most = max(most, ring.capacity)
        np.testing.assert_array_equal(ring.held()[:, 0], np.arange(ring.first, stop))
    assert len(ring) == lag
    assert most <= 4 * (lag + 60)


def test_storage_shrinks_after_a_burst():
    ring = FrameRing((4,))
    ring.append(0, np.zeros((10_000, 4)))
    big = ring.capacity
    ring.release(10_000)
    for first in range(10_000, 30_000, 10):  # storage is reshaped when its end is reached
        ring.append(first, np.ones((10, 4)))
        ring.release(first)
    assert ring.capacity < big // 4
    np.testing.assert_array_equal(ring.held(), np.ones((10, 4)))


class _SeenDetector:
    """A detector that records the ΔF/F0 the analyzer hands it (and delegates the rest)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: list[np.ndarray] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def push(self, first: int, dff0: np.ndarray):
        self.seen.append(np.array(dff0))
        return self.inner.push(first, dff0)


def _held_while_streaming(rec, kind, chunk: int):
    """Stream ``rec`` through an analyzer (classical detector); ΔF/F0 frames held after each
    push, the analyzer, and the ΔF/F0 it produced."""
    shape = rec.data.shape[1:]
    detector = _SeenDetector(ClassicalStreamDetector(rec.pixel_um, rec.dt_ms, shape))
    analyzer = StreamAnalyzer(StreamInfo("s", kind, shape, rec.pixel_um, rec.dt_ms), detector)
    held = []
    for first in range(0, rec.data.shape[0], chunk):
        analyzer.push(first, rec.data[first:first + chunk])
        held.append(analyzer.dff0_frames_held)
        recent = analyzer.recent_dff0()
        if not detector.seen:  # the preprocessor is still warming up
            assert recent is None
            continue
        dff0 = np.concatenate(detector.seen)
        keep = PREVIEW_LINES if kind.is_linescan else 1
        assert recent[0] == max(0, len(dff0) - keep)  # the preview: the latest frames
        np.testing.assert_array_equal(recent[1], dff0[-keep:])
    analyzer.finish()
    return np.array(held), analyzer


def test_analyzer_dff0_stays_bounded_on_a_long_linescan():
    """40,000 lines: the analyzer's one ΔF/F0 ring holds the preview's 1,024 lines (what the
    tracker and the detector's look-ahead need is less), not the stream."""
    rec = simulate_linescan(LinescanParams(n_lines=40_000, n_pixels=96, phenotype="cpvt"), seed=8)
    held, analyzer = _held_while_streaming(rec, StreamKind.LINESCAN, chunk=100)
    assert held[20:].min() >= PREVIEW_LINES  # the preview always has its lines
    assert held.max() <= 2 * PREVIEW_LINES
    assert analyzer._dff0.capacity <= 4 * held.max()  # storage follows what is held
    assert analyzer.stats.frames_final == 40_000


def test_analyzer_dff0_stays_bounded_on_a_movie():
    """A movie's preview is one frame, so the ring holds what the detector and tracker need."""
    rec = simulate_movie(MovieParams(n_frames=2000, n_y=16, n_x=64, phenotype="cpvt"), seed=8)
    held, analyzer = _held_while_streaming(rec, StreamKind.MOVIE, chunk=25)
    assert held.max() <= 4 * analyzer.lookahead_ms / rec.dt_ms
    assert analyzer._dff0.capacity <= 4 * held.max()
    assert analyzer.stats.frames_final == 2000
