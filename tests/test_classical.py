"""Classical detector: finds synthetic sparks through the tracker; block-invariant output."""

from __future__ import annotations

import numpy as np

from engine.classical import ClassicalDetector
from engine.postprocess import InstanceTracker

DT_MS, PX_UM = 1.5, 0.14


def noisy_linescan(seed=0, n_t=1200, n_x=300):
    rng = np.random.default_rng(seed)
    t = np.arange(n_t)[:, None] * DT_MS
    x = np.arange(n_x)[None, :] * PX_UM
    truth = [(150.0 + 300.0 * i, 5.0 + 9.0 * (i % 4)) for i in range(5)]
    clean = np.zeros((n_t, n_x))
    for t0, x0 in truth:
        time = np.where(t < t0, 0, np.exp(-np.clip(t - t0, 0, None) / 20.0)) * np.clip((t - t0 + 10) / 10, 0, 1)
        clean += 0.8 * time * np.exp(-0.5 * ((x - x0) / 0.85) ** 2)
    photons = 20.0
    noisy = rng.poisson(photons * (1 + clean)) / photons - 1
    return noisy.astype(np.float32), truth


def detect(detector, dff0, blocks):
    tracker = InstanceTracker((dff0.shape[1],), PX_UM, DT_MS, detector.thresholds)
    ctx, first, out = detector.context_frames, 0, []
    for n in blocks:
        lo, hi = max(0, first - ctx), min(len(dff0), first + n + ctx)
        probs = detector.predict_block(dff0[lo:hi], first - lo, hi - first - n)
        out += tracker.push(first, probs, dff0[first : first + n])
        first += n
    return out + tracker.flush()


def test_finds_synthetic_sparks_and_nothing_else():
    dff0, truth = noisy_linescan()
    detector = ClassicalDetector(PX_UM, DT_MS)
    found = detect(detector, dff0, [len(dff0)])
    assert all(i.kind == "spark" for i in found)
    peaks = sorted((i.t_start * DT_MS, (i.origin[2] + i.mask.shape[2] / 2) * PX_UM) for i in found)
    assert len(found) == len(truth)
    for (t_found, x_found), (t_true, x_true) in zip(peaks, truth, strict=True):
        assert abs(t_found - t_true) < 15 and abs(x_found - x_true) < 1.0


def test_pseudo_probabilities_do_not_depend_on_blocks():
    dff0, _ = noisy_linescan(seed=1, n_t=400)
    detector = ClassicalDetector(PX_UM, DT_MS)
    whole = detector.predict_block(dff0)
    ctx, parts = detector.context_frames, []
    for first in range(0, 400, 37):
        n = min(37, 400 - first)
        lo, hi = max(0, first - ctx - 5), min(400, first + n + ctx + 5)  # extra context is trimmed
        parts.append(detector.predict_block(dff0[lo:hi], first - lo, hi - first - n))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole.shape == (400, 4, 300)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, rtol=1e-6)


def test_streaming_equals_batch_events():
    dff0, _ = noisy_linescan(seed=2, n_t=900)
    detector = ClassicalDetector(PX_UM, DT_MS)
    batch = detect(detector, dff0, [900])
    stream = detect(detector, dff0, [50] * 18)
    assert [(i.event_id, i.origin, i.mask.tobytes()) for i in batch] == [
        (i.event_id, i.origin, i.mask.tobytes()) for i in stream
    ]


def test_movie_input_shape():
    rng = np.random.default_rng(0)
    frames = rng.normal(0, 0.1, (30, 8, 40)).astype(np.float32)
    probs = ClassicalDetector(0.2, 6.8, linescan=False).predict_block(frames)
    assert probs.shape == (30, 4, 8, 40) and probs.dtype == np.float32
