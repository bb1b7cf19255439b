"""InstanceTracker: Dotti post-processing, streaming == batch, size filters, splitting, gaps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from acquisition.labels import PUFF, SPARK, WAVE
from engine.frame_ring import FrameRing
from engine.instance_size import widest_front_um
from engine.instances import CONNECTIVITY, TrackerConfig
from engine.postprocess import InstanceTracker, active_regions, fill_temporal_gaps

DT_MS, PX_UM = 1.0, 0.2
#: these synthetic scenes are drawn in frames: Dotti's frame counts (gap 2, spark >= 3, puff >= 5)
FRAMES = TrackerConfig(gap_ms=2 * DT_MS, spark_min_ms=3 * DT_MS, puff_min_ms=5 * DT_MS)


def gaussian_spark(shape, t_ms, x_um, amp=1.0, fwhm_um=2.0, rise_ms=6.0, tau_ms=15.0):
    """Noise-free line-scan spark: Gaussian in X, linear rise then exponential decay."""
    t = np.arange(shape[0])[:, None] * DT_MS - t_ms
    x = np.arange(shape[1])[None, :] * PX_UM
    time = np.where(t < 0, 0, np.where(t < rise_ms, t / rise_ms, np.exp(-(t - rise_ms) / tau_ms)))
    return (amp * time * np.exp(-0.5 * ((x - x_um) / (fwhm_um / 2.3548)) ** 2)).astype(np.float32)


def probs_of(class_map: np.ndarray) -> np.ndarray:
    """Confident probabilities (n, 4, ...) from a class map."""
    probs = np.zeros((class_map.shape[0], 4, *class_map.shape[1:]), np.float32)
    probs[:, 0] = np.where(class_map > 0, 0.1, 0.95)
    for cls in (SPARK, WAVE, PUFF):
        probs[:, cls] = np.where(class_map == cls, 0.9, 0.05 / 3)
    return probs


def run(tracker, probs, dff0, blocks):
    out, labels, first = [], [], 0
    for n in blocks:
        out += tracker.push(first, probs[first : first + n], dff0[first : first + n])
        first += n
        popped = tracker.pop_final_labels()
        if popped:
            labels.append(popped)
    out += tracker.flush()
    popped = tracker.pop_final_labels()
    if popped:
        labels.append(popped)
    assert [f for f, _ in labels] == list(np.cumsum([0] + [len(lab) for _, lab in labels]))[:-1]
    return out, np.concatenate([lab for _, lab in labels])


def scene():
    """A line-scan with sparks (two of them side by side), a puff with a gap, a wave."""
    shape = (700, 200)
    dff0 = np.zeros(shape, np.float32)
    for t, x in [(40, 10.0), (40, 14.0), (200, 30.0), (420, 8.0)]:
        dff0 += gaussian_spark(shape, t, x)
    classes = np.where(dff0 > 0.15, SPARK, 0).astype(np.uint8)
    classes[300:320, 100:120] = PUFF
    classes[322:330, 100:120] = PUFF  # gap of 2 frames (320, 321): same puff
    dff0[300:330, 100:120] += 0.3
    classes[500:560, 60:180] = WAVE
    dff0[500:560, 60:180] += 1.0
    return probs_of(classes), dff0


def describe(instances):
    return [(i.event_id, i.kind, i.origin, i.mask.tobytes(), round(i.score, 6)) for i in instances]


def test_scene_instances():
    probs, dff0 = scene()
    tracker = InstanceTracker((200,), PX_UM, DT_MS, {"foreground": 0.5}, config=FRAMES)
    instances, labels = run(tracker, probs, dff0, [len(dff0)])
    kinds = sorted(i.kind for i in instances)
    assert kinds == ["puff", "spark", "spark", "spark", "spark", "wave"]
    assert labels.shape == dff0.shape and labels.dtype == np.int32
    assert [i.event_id for i in instances] == list(range(1, 7))
    for inst in instances:  # labels carry the event ids exactly on the instance masks
        t, _, x = inst.origin
        crop = labels[t : t + inst.mask.shape[0], x : x + inst.mask.shape[2]]
        assert np.all(crop[inst.mask[:, 0]] == inst.event_id)
        assert inst.dff0.shape[0] > inst.mask.shape[0]  # context frames around the event


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_batch(seed):
    probs, dff0 = scene()
    rng = np.random.default_rng(seed)
    blocks = []
    while sum(blocks) < len(dff0):
        blocks.append(int(min(rng.integers(1, 60), len(dff0) - sum(blocks))))
    batch, batch_labels = run(InstanceTracker((200,), PX_UM, DT_MS, config=FRAMES), probs, dff0, [len(dff0)])
    stream, stream_labels = run(InstanceTracker((200,), PX_UM, DT_MS, config=FRAMES), probs, dff0, blocks)
    assert describe(stream) == describe(batch)
    np.testing.assert_array_equal(stream_labels, batch_labels)


def test_nearby_sparks_split_only_when_apart():
    shape = (120, 100)
    for dx_um, expected in [(3.0, 2), (0.8, 1)]:
        dff0 = gaussian_spark(shape, 20, 8.0) + gaussian_spark(shape, 20, 8.0 + dx_um)
        probs = probs_of(np.where(dff0 > 0.15, SPARK, 0))
        out, _ = run(InstanceTracker((100,), PX_UM, DT_MS, config=FRAMES), probs, dff0, [shape[0]])
        assert len(out) == expected, dx_um


def test_dip_splitting_splits_pairs_by_their_dip_not_their_distance():
    """``split_dip_sd`` (h-maxima): a noisy single spark stays one event, a pair 1.2 µm / 15 ms
    apart -- inside Dotti's 1.8 µm / 20 ms box -- becomes two; given through the thresholds
    (the model directory's ``postprocess.json`` value) like the hybrid detector passes it."""
    shape = (200, 120)
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.1, shape).astype(np.float32)
    single = gaussian_spark(shape, 60, 12.0, amp=1.5, tau_ms=8.0) + noise
    pair = (gaussian_spark(shape, 60, 10.0, amp=1.5, tau_ms=8.0)
            + gaussian_spark(shape, 75, 11.2, amp=1.5, tau_ms=8.0) + noise)
    counts = {}
    for name, dff0 in (("single", single), ("pair", pair)):
        clean = dff0 - noise
        probs = probs_of(np.where(clean > 0.2, SPARK, 0))
        dip = dataclasses.replace(FRAMES, split_dip_sd=5.0)
        for rule, config in (("distance", FRAMES), ("dip", dip)):
            tracker = InstanceTracker((120,), PX_UM, DT_MS, config=config)
            out, _ = run(tracker, probs, dff0, [shape[0]])
            counts[name, rule] = len(out)
    assert counts["single", "dip"] == 1
    assert counts["pair", "dip"] == 2
    assert counts["pair", "distance"] == 1  # inside the distance box: merged


def box_instances(kind_id, frames, width_px, gap=0, dt_ms=6.8):
    """Instances of a box (and a second box after ``gap`` frames) at Dotti's 6.8 ms/frame,
    where the ms-based filters are exactly Dotti's frame counts."""
    classes = np.zeros((100, 200), np.uint8)
    classes[10 : 10 + frames, 50 : 50 + width_px] = kind_id
    if gap:
        classes[10 + frames + gap : 10 + 2 * frames + gap, 50 : 50 + width_px] = kind_id
    tracker = InstanceTracker((200,), PX_UM, dt_ms)
    out, _ = run(tracker, probs_of(classes), np.zeros(classes.shape, np.float32), [100])
    return out


def test_size_filters():
    assert len(box_instances(SPARK, 2, 5)) == 0  # < 3 frames
    assert len(box_instances(SPARK, 3, 3)) == 1  # 3 frames, 0.6 um
    assert len(box_instances(SPARK, 5, 2)) == 0  # 0.4 um
    assert len(box_instances(PUFF, 4, 20)) == 0
    assert len(box_instances(PUFF, 5, 20)) == 1
    assert len(box_instances(WAVE, 30, 70)) == 0  # 14 um
    assert len(box_instances(WAVE, 30, 80)) == 1  # 16 um


def test_gap_merging():
    assert len(box_instances(PUFF, 10, 20, gap=2)) == 1
    assert len(box_instances(PUFF, 10, 20, gap=3)) == 2
    # a 1.5 ms line-scan bridges the same 13.6 ms: up to 10 lines
    assert len(box_instances(PUFF, 30, 20, gap=10, dt_ms=1.5)) == 1
    assert len(box_instances(PUFF, 30, 20, gap=11, dt_ms=1.5)) == 2
    filled = fill_temporal_gaps(np.array([1, 0, 0, 1, 0, 0, 0, 1], bool), 2)
    assert filled.tolist() == [True] * 4 + [False] * 3 + [True]
    edges = fill_temporal_gaps(np.array([0, 0, 1, 0, 1, 0], bool), 5)
    assert edges.tolist() == [False, False, True, True, True, False]


@pytest.mark.parametrize("gap", [0, 1, 2, 3, 6, 7, 12])
def test_fill_temporal_gaps_matches_its_definition(gap: int) -> None:
    """Both ways of filling (boolean shifts for short gaps, running index max/min for long
    ones) equal the definition pixel by pixel: a False run is filled when it is at most
    ``gap`` frames long and has a True frame on both sides."""
    rng = np.random.default_rng(gap)
    for _ in range(40):
        shape = (int(rng.integers(1, 25)), int(rng.integers(1, 4)), int(rng.integers(1, 6)))
        mask = rng.random(shape) < rng.uniform(0.05, 0.8)
        expected = mask.copy()
        for y, x in np.ndindex(shape[1:]):
            true = np.flatnonzero(mask[:, y, x])
            for a, b in zip(true, true[1:], strict=False):
                if 0 < b - a - 1 <= gap:
                    expected[a:b, y, x] = True
        np.testing.assert_array_equal(fill_temporal_gaps(mask, gap), expected)


def test_mixed_region_takes_majority_class_without_splitting():
    classes = np.zeros((100, 200), np.uint8)
    classes[10:50, 20:120] = WAVE
    classes[10:50, 120:140] = SPARK
    config = dataclasses.replace(FRAMES, split_off_kinds=())
    out = run(InstanceTracker((200,), PX_UM, DT_MS, config=config), probs_of(classes),
              np.zeros(classes.shape, np.float32), [100])[0]
    assert [i.kind for i in out] == ["wave"] and out[0].mask.sum() == 40 * 120


def test_mixed_region_splits_off_minority_parts_that_pass_their_size_filter():
    """A spark beside a wave is its own event; a 2-frame spark-class fleck inside the wave is
    too short for a spark (3 frames) and stays part of the wave."""
    classes = np.zeros((100, 200), np.uint8)
    classes[10:50, 20:120] = WAVE
    classes[10:50, 120:140] = SPARK
    classes[20:22, 50:60] = SPARK
    dff0 = np.zeros(classes.shape, np.float32)
    t, x = np.mgrid[0:100, 0:200]
    dff0 += np.exp(-((t - 30) / 8.0) ** 2 - ((x - 130) / 5.0) ** 2).astype(np.float32)
    out = run(InstanceTracker((200,), PX_UM, DT_MS, config=FRAMES), probs_of(classes), dff0, [100])[0]
    kinds = sorted(i.kind for i in out)
    assert kinds == ["spark", "wave"]
    wave = next(i for i in out if i.kind == "wave")
    spark = next(i for i in out if i.kind == "spark")
    assert wave.mask.sum() == 40 * 100 and spark.mask.sum() == 40 * 20
    assert spark.origin == (10, 0, 120)


def test_only_confident_minority_parts_split_off():
    """A puff part of a wave splits off when its puff probability is high (0.9); an ambiguous
    one (0.6 puff, 0.3 wave: a wave tail, say) stays with the wave; kinds not in
    ``split_off_kinds`` never split off."""
    classes = np.zeros((100, 200), np.uint8)
    classes[10:50, 20:120] = WAVE
    classes[10:50, 120:140] = PUFF
    confident = probs_of(classes)
    ambiguous = confident.copy()
    ambiguous[10:50, PUFF, 120:140] = 0.6
    ambiguous[10:50, WAVE, 120:140] = 0.3
    dff0 = np.zeros(classes.shape, np.float32)
    kinds = {}
    for name, probs, config in [
        ("confident", confident, FRAMES),
        ("ambiguous", ambiguous, FRAMES),
        ("sparks only", confident, dataclasses.replace(FRAMES, split_off_kinds=("spark",))),
    ]:
        out = run(InstanceTracker((200,), PX_UM, DT_MS, config=config), probs, dff0, [100])[0]
        kinds[name] = sorted(i.kind for i in out)
    assert kinds == {"confident": ["puff", "wave"], "ambiguous": ["wave"], "sparks only": ["wave"]}


def test_wave_split_off_kinds_keeps_puff_parts_with_their_wave():
    """With ``wave_split_off_kinds=("spark",)`` a confident puff part of a wave stays part of
    the wave, a spark part of the same wave still splits off, and a puff part of a region whose
    majority is spark still splits off (the rule is about waves only)."""
    classes = np.zeros((100, 200), np.uint8)
    classes[10:50, 20:120] = WAVE
    classes[10:50, 120:140] = PUFF
    classes[10:50, 0:20] = SPARK
    dff0 = np.zeros(classes.shape, np.float32)
    t, x = np.mgrid[0:100, 0:200]
    dff0 += np.exp(-((t - 30) / 8.0) ** 2 - ((x - 10) / 5.0) ** 2).astype(np.float32)
    on_spark = np.zeros((100, 200), np.uint8)
    on_spark[10:50, 20:150] = SPARK
    on_spark[10:50, 150:170] = PUFF
    keep_puffs = dataclasses.replace(FRAMES, wave_split_off_kinds=("spark",))
    out = {name: run(InstanceTracker((200,), PX_UM, DT_MS, config=config), probs_of(classes_),
                     dff0, [100])[0]
           for name, classes_, config in [("default", classes, FRAMES),
                                          ("wave keeps puffs", classes, keep_puffs),
                                          ("spark region", on_spark, keep_puffs)]}
    found = {name: sorted(i.kind for i in instances) for name, instances in out.items()}
    assert found["default"] == ["puff", "spark", "wave"]
    assert found["wave keeps puffs"] == ["spark", "wave"]
    assert "puff" in found["spark region"]
    wave = next(i for i in out["wave keeps puffs"] if i.kind == "wave")
    assert wave.mask.sum() == 40 * 120  # its own 100 columns and the puff's 20


def test_memory_bounded_on_long_stream():
    shape = (6000, 100)
    dff0 = sum(gaussian_spark(shape, t, 10.0) for t in range(100, 6000, 400))
    probs = probs_of(np.where(dff0 > 0.15, SPARK, 0))
    tracker = InstanceTracker((100,), PX_UM, DT_MS, config=FRAMES)
    most, found = 0, 0
    for first in range(0, shape[0], 50):
        found += len(tracker.push(first, probs[first : first + 50], dff0[first : first + 50]))
        most = max(most, tracker.buffered_frames)
    found += len(tracker.flush())
    assert found == 15 and most < 250


def test_movie_sparks_and_block_invariance():
    t = np.arange(60)[:, None, None] * 6.8
    y, x = (grid[None] * 0.2 for grid in np.mgrid[0:20, 0:40])
    dff0 = np.zeros((60, 20, 40), np.float32)
    for t0, y0, x0 in [(50.0, 1.0, 2.0), (50.0, 3.0, 6.0), (150.0, 2.0, 4.0)]:
        time = np.where(t < t0, 0, np.exp(-np.abs(t - t0) / 20.0))
        dff0 += (time * np.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * 0.8**2))).astype(np.float32)
    probs = probs_of(np.where(dff0 > 0.15, SPARK, 0))
    batch, labels = run(InstanceTracker((20, 40), 0.2, 6.8), probs, dff0, [60])
    stream, stream_labels = run(InstanceTracker((20, 40), 0.2, 6.8), probs, dff0, [7] * 8 + [4])
    assert len(batch) == 3 and all(i.axes == "TYX" for i in batch)
    assert describe(stream) == describe(batch)
    assert labels.shape == dff0.shape and np.array_equal(labels, stream_labels)


def test_out_of_order_push_raises():
    tracker = InstanceTracker((10,), PX_UM, DT_MS, config=FRAMES)
    tracker.push(0, np.zeros((5, 4, 10), np.float32), np.zeros((5, 10), np.float32))
    with pytest.raises(ValueError, match="expected 5"):
        tracker.push(7, np.zeros((5, 4, 10), np.float32), np.zeros((5, 10), np.float32))


def test_a_puff_that_travelled_a_wave_width_is_named_wave_only_when_asked():
    """A puff-class region drifting 16 µm along x over its life (never that wide in one line):
    a puff by default, a wave with ``wide_puff_is_wave_um`` 15; a 4-µm puff stays a puff."""
    classes = np.zeros((120, 200), np.uint8)
    for t in range(80):  # a 2-µm front moving one pixel per frame: 16 µm in all
        classes[10 + t, 40 + t: 50 + t] = PUFF
    classes[10:60, 150:170] = PUFF  # 4 µm, standing still
    dff0 = np.zeros(classes.shape, np.float32)
    kinds = {}
    for limit in (None, 15.0):
        config = dataclasses.replace(TrackerConfig(), wide_puff_is_wave_um=limit)
        out = run(InstanceTracker((200,), PX_UM, 6.8, config=config), probs_of(classes), dff0,
                  [120])[0]
        kinds[limit] = sorted((i.origin[-1], i.kind) for i in out)
    assert kinds[None] == [(40, "puff"), (150, "puff")]
    assert kinds[15.0] == [(40, "wave"), (150, "puff")]


def test_a_spark_region_with_a_wave_wide_front_is_one_wave_only_when_asked():
    """A spark-class region 20 µm wide in every line for 60 lines, with bumps the split would
    cut at (a wave's plateau named spark): many sparks by default, one wave with
    ``wide_spark_is_wave_um`` 15; a 2-µm spark beside it stays a spark, and so does a chain
    of sparks that drifts 16 µm over its life but is never wider than 2 µm in one line."""
    classes = np.zeros((160, 400), np.uint8)
    classes[10:70, 20:120] = SPARK  # 20 µm at 0.2 µm/px
    classes[20:40, 200:210] = SPARK  # 2 µm
    for t in range(80):  # a 2-µm front moving one pixel per line
        classes[60 + t, 250 + t: 260 + t] = SPARK
    dff0 = np.zeros(classes.shape, np.float32)
    x = np.arange(400)
    dff0[10:70, 20:120] = 1.0 + 0.5 * np.cos(2 * np.pi * x[20:120] / 12.5)  # bumps 2.5 µm apart
    dff0[20:40, 200:210] = 1.0
    for t in range(80):
        dff0[60 + t, 250 + t: 260 + t] = 1.0
    kinds = {}
    for limit in (None, 15.0):
        config = dataclasses.replace(TrackerConfig(), wide_spark_is_wave_um=limit)
        out = run(InstanceTracker((400,), PX_UM, 6.8, config=config), probs_of(classes), dff0,
                  [160])[0]
        kinds[limit] = [(i.origin[-1] // 100, i.kind) for i in out]
    assert sum(k == (0, "spark") for k in kinds[None]) > 3
    assert [k for k in kinds[15.0] if k[0] == 0] == [(0, "wave")]
    right = [k for k in kinds[15.0] if k[0] == 2]
    assert right == [k for k in kinds[None] if k[0] == 2] and {k for _, k in right} == {"spark"}
    assert len(right) >= 2


def test_widest_front_is_per_frame_and_covers_y_in_movies():
    mask = np.zeros((3, 10, 20), bool)
    mask[0, 2, 0:5] = True
    mask[1, 2, 10:12] = True  # over the life 12 px in x, never more than 5 in one frame
    mask[2, 0:8, 15] = True  # 8 px in y in one frame
    assert widest_front_um(mask, 0.5, linescan=False) == pytest.approx(4.0)
    assert widest_front_um(mask, 0.5, linescan=True) == pytest.approx(2.5)
    assert widest_front_um(np.zeros((2, 1, 4), bool), 0.5, linescan=True) < 1e-6


def test_shared_dff0_ring_gives_the_same_instances():
    """The analyzer's way: ΔF/F0 appended to a shared ring ahead of the probabilities, released
    up to ``needed_from`` after every push; same instances, contexts and labels as a tracker
    keeping its own ΔF/F0."""
    probs, dff0 = scene()
    own, own_labels = run(InstanceTracker((200,), PX_UM, DT_MS, config=FRAMES), probs, dff0,
                          [37] * 18 + [34])
    ring = FrameRing((200,))
    tracker = InstanceTracker((200,), PX_UM, DT_MS, config=FRAMES, dff0=ring)
    shared, labels, most = [], [], 0
    for first in range(0, len(dff0), 37):
        stop = min(first + 37, len(dff0))
        ring.append(ring.stop, dff0[ring.stop:min(stop + 50, len(dff0))])  # look-ahead
        shared += tracker.push(first, probs[first:stop])
        ring.release(tracker.needed_from)
        most = max(most, len(ring))
        labels.append(tracker.pop_final_labels())
    shared += tracker.flush()
    labels.append(tracker.pop_final_labels())
    assert describe(shared) == describe(own) and len(own) == 6
    for a, b in zip(shared, own, strict=True):
        np.testing.assert_array_equal(a.dff0, b.dff0)
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in filter(None, labels)]),
                                  own_labels)
    assert most < len(dff0) // 2  # the ring was released as the tracker went
    with pytest.raises(ValueError, match="exactly when the tracker keeps its own ring"):
        tracker.push(tracker.next_frame, probs[:1], dff0[:1])


@pytest.mark.parametrize("gap_frames", [0, 2, 9])
def test_regions_on_the_active_box_are_those_of_the_whole_array(gap_frames):
    """The tracker labels the bounding box of the active pixels only: the same regions, pixels
    and order as gap filling and labelling the whole held volume."""
    rng = np.random.default_rng(gap_frames)
    active = np.zeros((60, 5, 40), bool)
    active[7:50, 1:4, 6:31] = rng.random((43, 3, 25)) < 0.12
    full, _ = ndimage.label(fill_temporal_gaps(active, gap_frames), structure=CONNECTIVITY)
    expected = [(s, (full[s] == label) & active[s])
                for label, s in enumerate(ndimage.find_objects(full), start=1)]
    got = list(active_regions(active, gap_frames))
    assert len(expected) > 3
    assert [s for s, _ in got] == [s for s, _ in expected]
    for (_, pixels), (_, want) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(pixels, want)
    assert list(active_regions(np.zeros((4, 1, 8), bool), gap_frames)) == []


def test_a_region_that_never_closes_is_cut_and_memory_stays_bounded():
    """A wave-class patch that stays on for 4,950 frames, with max_event_ms 1,000: it comes
    out as four events of 1,000 frames each and its last 950 frames, all flagged truncated,
    whatever the blocks; frames held stay near 1,000 + context, and a spark after it is found
    as usual, not flagged. Without the cut the tracker holds every frame since the patch
    began."""
    shape = (5400, 100)
    classes = np.zeros(shape, np.uint8)
    classes[100:5050, 10:95] = WAVE  # 17 µm: wide enough to be a wave
    dff0 = np.where(classes > 0, 1.0, 0.0).astype(np.float32)
    spark = gaussian_spark(shape, 5250, 10.0)
    dff0 += spark
    classes[spark > 0.15] = SPARK
    probs = probs_of(classes)
    config = dataclasses.replace(FRAMES, max_event_ms=1000 * DT_MS)
    results = []
    for blocks in ([50] * 108, [700, 13, 2000, 1687, 1000]):
        tracker = InstanceTracker((100,), PX_UM, DT_MS, config=config)
        most, out, first = 0, [], 0
        for n in blocks:
            out += tracker.push(first, probs[first : first + n], dff0[first : first + n])
            first += n
            most = max(most, tracker.buffered_frames)
        out += tracker.flush()
        results.append(describe(out))
        assert [(i.kind, i.origin[0], i.mask.shape[0], i.truncated) for i in out] == [
            ("wave", 100 + 1000 * k, 1000, True) for k in range(4)] + [
            ("wave", 4100, 950, True), ("spark", out[-1].origin[0], out[-1].mask.shape[0],
                                          False)]
        if blocks[0] == 50:
            assert most < 1100
    assert results[0] == results[1]

    unbounded = InstanceTracker((100,), PX_UM, DT_MS, config=FRAMES)
    for first in range(0, 5000, 50):
        unbounded.push(first, probs[first : first + 50], dff0[first : first + 50])
    assert unbounded.buffered_frames > 4800


def test_a_truncated_event_keeps_its_place_and_times_but_no_parameters():
    from engine.honesty import TRUNCATED_FLAG, apply
    from engine.instances import Instance

    instance = Instance("wave", 0.9, np.ones((3, 1, 4), bool), (0, 0, 0),
                        np.zeros((3, 1, 4), np.float32), (0, 0, 0), significance=9.0,
                        truncated=True)
    fields = {"amplitude_dff0": 1.0, "fwhm_um": 2.0, "fdhm_ms": 30.0, "rise_ms": 10.0,
              "t50_ms": 20.0, "t_start_ms": 5.0}
    apply(fields, instance, PX_UM, DT_MS)
    assert fields["flags"] == TRUNCATED_FLAG and fields["t_start_ms"] == 5.0
    assert all(np.isnan(fields[name]) for name in
               ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms"))


def wave_with_a_spark_on_its_tail(noise_sd: float = 0.0, seed: int = 0,
                                  spark_ms: float = 200.0, spark_amp: float = 1.0):
    """A 40-µm wave (ΔF/F0 2, decaying with τ 60 ms after each pixel's front, the front
    sweeping 0.5 µm per ms) named wave everywhere, with a 2-µm spark (ΔF/F0 ``spark_amp``)
    on its tail, starting at ``spark_ms`` (200: 176 ms after the front passed the spark's
    pixels), inside the wave's region."""
    shape = (400, 300)
    t = np.arange(shape[0])[:, None] * DT_MS
    x = np.arange(shape[1])[None, :] * PX_UM
    front = 20.0 + 2.0 * np.abs(x - 30.0)
    since = t - front
    wave = np.where((x >= 10) & (x <= 50), np.where(since >= 0, 2.0 * np.exp(-since / 60.0), 0.0),
                    0.0)
    dff0 = (wave + gaussian_spark(shape, spark_ms, 32.0, amp=spark_amp)).astype(np.float32)
    dff0 += np.random.default_rng(seed).normal(0, noise_sd, shape).astype(np.float32)
    classes = np.where((wave > 0.05) | (dff0 > 0.3), WAVE, 0).astype(np.uint8)
    return probs_of(classes), dff0


def test_a_spark_on_a_wave_tail_is_cut_out_only_when_asked():
    """With ``wave_split_width_um`` the wave's region gives the wave and a spark at the spark's
    own peak, held to ``wave_split_min_significance``; without it, one wave."""
    probs, dff0 = wave_with_a_spark_on_its_tail(noise_sd=0.02)
    base = dataclasses.replace(FRAMES, split_dip_sd=5.0)
    found = {}
    for width in (None, 15.0):
        config = dataclasses.replace(base, wave_split_width_um=width,
                                     wave_split_min_significance=12.0)
        found[width] = run(InstanceTracker((300,), PX_UM, DT_MS, config=config), probs, dff0,
                           [400])[0]
    assert [i.kind for i in found[None]] == ["wave"]
    assert sorted(i.kind for i in found[15.0]) == ["spark", "wave"]
    spark = next(i for i in found[15.0] if i.kind == "spark")
    t_peak = 200 + 6  # the spark's own peak: its start plus its rise (gaussian_spark)
    assert spark.origin[0] <= t_peak < spark.origin[0] + spark.mask.shape[0]
    assert spark.origin[-1] <= round(32.0 / PX_UM) < spark.origin[-1] + spark.mask.shape[-1]
    assert spark.min_significance == 12.0
    assert widest_front_um(spark.mask, PX_UM, linescan=True) < 5.0


def test_a_spark_on_a_high_wave_level_is_cut_out_from_a_lower_rise_ratio():
    """A spark of ΔF/F0 0.5 fired 76 ms after the wave's front, where the wave still stands
    at about 0.6: it does not double its level, so it stays in the wave unless
    ``wave_split_min_rise_ratio`` asks for less."""
    probs, dff0 = wave_with_a_spark_on_its_tail(noise_sd=0.02, spark_ms=100.0, spark_amp=0.5)
    kinds = {}
    for ratio in (1.0, 0.3):
        config = dataclasses.replace(FRAMES, split_dip_sd=5.0, wave_split_width_um=15.0,
                                     wave_split_min_rise_ratio=ratio)
        out = run(InstanceTracker((300,), PX_UM, DT_MS, config=config), probs, dff0, [400])[0]
        kinds[ratio] = sorted(i.kind for i in out)
    assert kinds == {1.0: ["wave"], 0.3: ["spark", "wave"]}


def test_a_wave_without_a_spark_stays_whole():
    """The same wave without the spark, in noise: nothing is cut out of it (its bumps neither
    dip 5 noise SDs nor double the level they stand on)."""
    probs, dff0 = wave_with_a_spark_on_its_tail(noise_sd=0.02)
    shape = dff0.shape
    dff0 = dff0 - gaussian_spark(shape, 200.0, 32.0)
    config = dataclasses.replace(FRAMES, split_dip_sd=5.0, wave_split_width_um=15.0)
    out = run(InstanceTracker((300,), PX_UM, DT_MS, config=config), probs, dff0, [400])[0]
    assert [i.kind for i in out] == ["wave"]


def test_the_accept_check_holds_an_instance_to_its_own_floor(monkeypatch) -> None:
    """A spark cut out of a wave carries ``min_significance``: the analyzer's accept check
    rejects it under that floor although it clears the stream's, and judges others as before."""
    import engine.analyzer as analyzer_module
    from engine.analyzer import StreamAnalyzer
    from engine.instances import Instance

    monkeypatch.setattr(analyzer_module, "significances", lambda *a, **k: (10.0, float("nan")))

    class _Stub:
        budget = type("B", (), {"take": staticmethod(lambda key: True)})()
        info = type("I", (), {"dt_ms": DT_MS, "pixel_um": PX_UM})()
        _noise = type("N", (), {"dff0_map_before": staticmethod(lambda *a: None)})()
        _resting = None
        _pre = type("P", (), {"blank": 0.0})()
        _local_min_significance = None
        _wave_min_significance = None
        min_significance = 6.0

        def _tail(self, instance):
            return False

        def _rises(self, instance):
            return True

        def _too_small(self, instance):
            return False

    def spark(floor):
        mask = np.ones((5, 1, 5), bool)
        return Instance("spark", 0.9, mask, (10, 0, 10), np.zeros((9, 1, 9), np.float32),
                        (8, 0, 8), min_significance=floor)

    stub = _Stub()
    assert StreamAnalyzer._significant(stub, spark(None)) is True
    assert StreamAnalyzer._significant(stub, spark(12.0)) is False
    assert StreamAnalyzer._significant(stub, spark(4.0)) is True  # never below the stream's
    stub.min_significance = 11.0
    assert StreamAnalyzer._significant(stub, spark(4.0)) is False
