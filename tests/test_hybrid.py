"""The hybrid detector (engine/hybrid.py): fusion rule, parameters file, streaming."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from acquisition.simulate import PHENOTYPES, LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from engine.dense_ops import CPU_OPS
from engine.hybrid import HYBRID_FILE, HybridDetector, HybridParams
from engine.models.postprocess_file import PostprocessParams
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array
from tests.fixtures_models import make_tiny_model_dir


class _Stub:
    """A detector stand-in with fixed thresholds (fusion is tested without running either)."""

    def __init__(self, thresholds):
        self.thresholds = thresholds
        self.preprocess, self.trained_range, self.name = {}, None, "stub"
        self.network_calibration = None
        self.dense_ops = CPU_OPS
        self.postprocess = PostprocessParams()
        self.batcher = None


def _probs(event: np.ndarray, kind: int) -> np.ndarray:
    """(n, 4, X) probabilities: P(event) = ``event`` of class ``kind``, the rest background."""
    out = np.zeros((event.shape[0], 4, *event.shape[1:]), np.float32)
    out[:, 0] = 1.0 - event
    out[:, kind] = event
    return out


def _hybrid(**params) -> HybridDetector:
    net = _Stub({"foreground": 0.7, "min_significance": 8.0})
    cls = _Stub({"foreground": 0.3, "seed": 0.5})
    return HybridDetector(net, cls, HybridParams(**params))


def test_fusion_keeps_what_either_detector_finds_and_takes_waves_from_classical():
    hybrid = _hybrid(classes_from_classical=("wave",))
    net_event = np.zeros((4, 6), np.float32)
    cls_event = np.zeros((4, 6), np.float32)
    net_event[:, 0] = 0.9  # network only: a spark
    cls_event[:, 1] = 0.6  # classical only (above its seed): a spark
    net_event[:, 2] = 0.95  # both; the network says spark, the classical detector wave
    cls_event[:, 2] = 0.8
    net_event[:, 3] = 0.6  # network below its threshold, classical nothing: background
    net = _probs(net_event, 1)
    cls = _probs(cls_event, 1)
    cls[:, 1, 2], cls[:, 2, 2] = 0.0, 0.8  # column 2: classical wave
    fused = hybrid.fuse(net, cls)
    fg = 1.0 - fused[:, 0]
    thr = hybrid.thresholds
    assert (fg[:, 0] >= thr["seed"]).all()  # a network detection is a seed
    assert (fg[:, 1] >= thr["seed"]).all()
    assert (fg[:, 3] < thr["foreground"]).all()
    assert (fg[:, 4:] < thr["foreground"]).all()
    assert (np.argmax(fused[:, 1:, 0], axis=1) == 0).all()  # spark
    assert (np.argmax(fused[:, 1:, 2], axis=1) == 1).all()  # wave, from the classical detector
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-5)
    assert thr["min_significance"] == 8.0  # the network's, unless hybrid.json sets one


def test_network_spark_share_keeps_confident_network_sparks_inside_a_classical_wave():
    """A spark on a wave: where the network is sure of a spark, its class survives inside the
    classical wave (so the tracker can split it off); elsewhere in the wave, and inside a
    classical puff, the classical class still rules."""
    net_event = np.full((4, 3), 0.95, np.float32)
    cls_event = np.full((4, 3), 0.8, np.float32)
    net = _probs(net_event, 1)  # the network: spark everywhere...
    net[:, 1, 1], net[:, 2, 1] = 0.45, 0.5  # ...but only a 47 % spark share in column 1
    cls = _probs(cls_event, 2)  # the classical detector: wave in columns 0-1...
    cls[:, 2, 2], cls[:, 3, 2] = 0.0, 0.8  # ...and a puff in column 2
    plain = _hybrid(classes_from_classical=("wave", "puff")).fuse(net, cls)
    kept = _hybrid(classes_from_classical=("wave", "puff"), network_spark_share=0.8).fuse(net, cls)
    kind = lambda fused: np.argmax(fused[:, 1:], axis=1) + 1  # noqa: E731
    assert (kind(plain)[:, 0] == 2).all() and (kind(kept)[:, 0] == 1).all()  # spark survives
    assert (kind(kept)[:, 1] == 2).all()  # share below the floor: the wave's class
    assert (kind(plain)[:, 2] == 3).all() and (kind(kept)[:, 2] == 3).all()  # puffs untouched
    np.testing.assert_allclose(kept[:, 0], plain[:, 0])  # detection itself unchanged


def test_waves_need_classical_keeps_only_confirmed_network_waves():
    """With ``waves_need_classical`` a network wave stays a wave where the classical detector
    sees a wave, takes the classical class where it sees another event, and is background
    where it sees none; without it, the network's wave everywhere."""
    net = _probs(np.full((4, 3), 0.95, np.float32), 2)  # the network: wave in every column
    cls_event = np.zeros((4, 3), np.float32)
    cls_event[:, :2] = 0.8
    cls = _probs(cls_event, 2)  # the classical detector: wave in column 0...
    cls[:, 2, 1], cls[:, 1, 1] = 0.0, 0.8  # ...a spark in column 1, nothing in column 2
    kind = lambda fused: np.argmax(fused[:, 1:], axis=1) + 1  # noqa: E731
    plain = _hybrid(classes_from_classical=("puff",)).fuse(net, cls)
    ruled = _hybrid(classes_from_classical=("puff",), waves_need_classical=True).fuse(net, cls)
    assert (kind(plain) == 2).all()
    assert (kind(ruled)[:, 0] == 2).all() and (kind(ruled)[:, 1] == 1).all()
    fg = 1.0 - ruled[:, 0]
    assert (fg[:, :2] >= 0.5).all() and (fg[:, 2] == 0.0).all()
    np.testing.assert_allclose(ruled.sum(axis=1), 1.0, atol=1e-5)


def test_classical_weight_zero_leaves_detection_to_the_network():
    hybrid = _hybrid(classical_weight=0.0)
    cls_event = np.zeros((3, 4), np.float32)
    cls_event[:, 1] = 0.9
    fused = hybrid.fuse(_probs(np.zeros((3, 4), np.float32), 1), _probs(cls_event, 1))
    assert (1.0 - fused[:, 0] < hybrid.thresholds["foreground"]).all()


def test_params_round_trip_and_reject_unknown_keys(tmp_path):
    params = HybridParams(classical_weight=0.5, classes_from_classical=("wave", "puff"),
                          min_significance=6.0, classical={"k_detect": 6.5}, provenance="test")
    params.save(tmp_path)
    assert HybridParams.load(tmp_path) == params
    assert HybridParams.load(tmp_path / "missing") is None
    data = json.loads((tmp_path / HYBRID_FILE).read_text())
    data["classical_wieght"] = 1.0
    (tmp_path / HYBRID_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown keys"):
        HybridParams.load(tmp_path)


@pytest.mark.parametrize("key", ["min_significance", "wave_min_significance",
                                 "local_min_significance"])
def test_hybrid_json_names_a_floor_that_is_not_a_number(tmp_path, key):
    (tmp_path / "hybrid.json").write_text(json.dumps({"schema_version": 1, key: "four"}))
    with pytest.raises(ValueError, match=f"hybrid.json: {key} must be a number or null"):
        HybridParams.load(tmp_path)


@pytest.fixture(scope="module")
def linescan():
    return simulate_linescan(LinescanParams(n_lines=1200, n_pixels=192), seed=21)


def _events(rec, model, detector, chunk_frames=256, hybrid=None):
    factory = DetectorFactory(EngineConfig(model=model, backend="torch", detector=detector,
                                           hybrid=hybrid))
    result = analyze_array(rec.data, StreamKind.LINESCAN, rec.pixel_um, rec.dt_ms, blank=rec.blank,
                           factory=factory, chunk_frames=chunk_frames)
    return result


def test_hybrid_finds_the_union_and_does_not_depend_on_chunking(linescan, tmp_path):
    # a stand-in network (ΔF/F0 > 0.5 is "spark") and the classical detector find different
    # events; the hybrid keeps the pixels of both
    model = make_tiny_model_dir(tmp_path / "m", ndim=2, behaviour="threshold",
                                threshold_dff0=0.5)
    net = _events(linescan, model, "network")
    classical = _events(linescan, None, "classical")
    hybrid = _events(linescan, model, "hybrid")
    assert hybrid.detector.startswith("hybrid:")
    assert len(net.events) > 0 and len(classical.events) > 0
    assert len(hybrid.events) >= max(len(net.events), len(classical.events))
    covered = hybrid.labels > 0
    assert covered[net.labels > 0].mean() > 0.9
    assert covered[classical.labels > 0].mean() > 0.9
    again = _events(linescan, model, "hybrid", chunk_frames=97)
    assert [e.to_dict() for e in again.events] == [e.to_dict() for e in hybrid.events]


def test_auto_runs_hybrid_only_with_hybrid_json(linescan, tmp_path):
    model = make_tiny_model_dir(tmp_path / "m", ndim=2, behaviour="threshold",
                                threshold_dff0=0.5)
    assert _events(linescan, model, "auto").detector.startswith("network:")
    HybridParams(min_significance=-1e9).save(model)
    assert _events(linescan, model, "auto").detector.startswith("hybrid:")
    assert _events(linescan, model, "network").detector.startswith("network:")


def test_hybrid_passes_the_networks_event_rules_through():
    """The kind rules and the ``imprecise`` threshold of the network's thresholds.json reach
    the analyzer through the hybrid (its own foreground/seed replace the network's)."""
    net = _Stub({"foreground": 0.7, "min_significance": 8.0, "puff_min_rise_ms": 35.0,
                 "precise_min_significance": 15.0})
    hybrid = HybridDetector(net, _Stub({"foreground": 0.3, "seed": 0.5}), HybridParams())
    assert hybrid.thresholds["precise_min_significance"] == 15.0
    assert hybrid.thresholds["puff_min_rise_ms"] == 35.0
    assert hybrid.thresholds["foreground"] == 0.3


def test_wave_min_significance_drops_only_waves_below_it(tmp_path):
    """``wave_min_significance`` holds events named wave to their own floor; other events keep
    ``min_significance``, and without the key waves are judged like any event."""
    stats = replace(PHENOTYPES["cpvt"], wave_rate_per_cell_s=2.0)
    rec = simulate_linescan(LinescanParams(phenotype="cpvt", duration_s=4.0, stats=stats),
                            seed=5)
    model = make_tiny_model_dir(tmp_path / "m", ndim=2, behaviour="threshold",
                                threshold_dff0=0.5)
    base = _events(rec, model, "hybrid", hybrid=HybridParams(min_significance=5.0))
    waves = [e for e in base.events if e.kind == "wave"]
    others = sorted((e.t_start_ms, e.x_um) for e in base.events if e.kind != "wave")
    assert waves and others
    weakest = min(e.significance for e in waves)
    # a floor just above the weakest wave drops it and nothing else
    strict = _events(rec, model, "hybrid", hybrid=HybridParams(
        min_significance=5.0, wave_min_significance=weakest + 1e-3))
    kept = [e for e in strict.events if e.kind == "wave"]
    assert len(kept) == len(waves) - sum(e.significance == weakest for e in waves)
    assert all(e.significance > weakest for e in kept)
    assert sorted((e.t_start_ms, e.x_um) for e in strict.events if e.kind != "wave") == others
    # a floor under min_significance changes nothing
    low = _events(rec, model, "hybrid", hybrid=HybridParams(min_significance=5.0,
                                                             wave_min_significance=1.0))
    assert [e.to_dict() for e in low.events] == [e.to_dict() for e in base.events]


def test_local_min_significance_drops_events_and_the_report_says_so(tmp_path):
    """``local_min_significance`` holds every event to its rise above its own pixels before
    it: a floor no event reaches rejects all that can be told (counted as not significant),
    one every event passes changes nothing; the quality report carries the floor."""
    rec = simulate_linescan(LinescanParams(duration_s=3.0), seed=7)
    model = make_tiny_model_dir(tmp_path / "m", ndim=2, behaviour="threshold",
                                threshold_dff0=0.5)
    base = _events(rec, model, "hybrid", hybrid=HybridParams(min_significance=5.0))
    assert len(base.events) > 3
    assert base.quality["events"]["local_min_significance"] is None
    strict = _events(rec, model, "hybrid", hybrid=HybridParams(min_significance=5.0,
                                                                local_min_significance=1e9))
    assert len(strict.events) < len(base.events) / 2
    events = strict.quality["events"]
    assert events["local_min_significance"] == 1e9
    assert (events["rejected_not_significant"]
            > base.quality["events"]["rejected_not_significant"])
    loose = _events(rec, model, "hybrid", hybrid=HybridParams(min_significance=5.0,
                                                               local_min_significance=-1e9))
    assert [e.to_dict() for e in loose.events] == [e.to_dict() for e in base.events]
