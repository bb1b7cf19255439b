"""Pairs merged into one region: split by one-against-two spark shapes (engine.pair_split)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from acquisition.labels import SPARK
from engine.pair_split import (
    PairRule,
    _jacobian,
    _model,
    excess_explained,
    features,
    fit_pair,
    split_pair,
)
from engine.postprocess import InstanceTracker
from tests.test_postprocess import DT_MS, FRAMES, PX_UM, gaussian_spark, probs_of, run

SHAPE = (220, 120)
#: the pair: the second spark 1.4 µm away starts 12 ms later, on the first one's top
FIRST, SECOND = (60, 10.0), (72, 11.4)
PAIR_SPLIT = dict(pair_split_min_gain_fraction=0.015)
RULE = PairRule(0.015)


def _noise(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.08, SHAPE).astype(np.float32)


def _pair() -> np.ndarray:
    return (gaussian_spark(SHAPE, *FIRST, amp=1.5, tau_ms=25.0)
            + gaussian_spark(SHAPE, *SECOND, amp=1.2, tau_ms=25.0))


def _spreading_spark() -> np.ndarray:
    """One spark whose width grows as it decays (diffusion): not symmetric in time, but
    symmetric about its site at every time."""
    t = np.arange(SHAPE[0])[:, None] * DT_MS - 60.0
    x = np.arange(SHAPE[1])[None, :] * PX_UM - 12.0
    sd = np.sqrt(0.8**2 + 0.05 * np.clip(t, 0.0, None))
    time = np.where(t < 0, 0.0, np.where(t < 8.0, t / 8.0, np.exp(-(t - 8.0) / 25.0)))
    return (1.6 * time * 0.8 / sd * np.exp(-0.5 * (x / sd) ** 2)).astype(np.float32)


def _events(dff0: np.ndarray, clean: np.ndarray, **config) -> list:
    probs = probs_of(np.where(clean > 0.2, SPARK, 0))
    tracker = InstanceTracker((SHAPE[1],), PX_UM, DT_MS,
                              config=dataclasses.replace(FRAMES, split_dip_sd=5.0, **config))
    out, _ = run(tracker, probs, dff0, [SHAPE[0]])
    return out


def test_a_pair_on_one_maximum_is_split_and_each_part_holds_its_own_peak():
    clean = _pair()
    noisy = clean + _noise()
    assert len(_events(noisy, clean)) == 1  # the dip split alone keeps the pair merged
    events = _events(noisy, clean, **PAIR_SPLIT)
    assert len(events) == 2
    for (t_ms, x_um) in (FIRST, SECOND):
        peak_t, peak_x = int(t_ms / DT_MS) + 6, int(round(x_um / PX_UM))  # 6 ms rise
        assert sum(_holds(e, peak_t, peak_x) for e in events) == 1, (t_ms, x_um)


def _holds(event, t: int, x: int) -> bool:
    """Whether the event's mask holds the line-scan pixel ``(t, x)``."""
    i, k = t - event.origin[0], x - event.origin[2]
    return (0 <= i < event.mask.shape[0] and 0 <= k < event.mask.shape[2]
            and bool(event.mask[i, 0, k]))


def test_a_single_spreading_spark_and_noise_stay_whole():
    clean = _spreading_spark()
    assert len(_events(clean + _noise(4), clean, **PAIR_SPLIT)) == 1
    assert len(_events(clean + _noise(5), clean, **PAIR_SPLIT)) == 1
    # a piece of pure noise: nothing to fit, never split
    part = np.zeros((40, 1, 30), bool)
    part[5:35, 0, 5:25] = True
    noise = _noise(6)[:40, None, :30]
    assert split_pair(noise, part, 0.08, DT_MS, PX_UM, RULE) is None


def test_the_split_needs_every_condition():
    clean = _pair()[:, None, :]
    part = clean > 0.2
    values = (clean + _noise()[:, None, :]).astype(np.float32)
    smoothed = ndimage.gaussian_filter(values, (3.0, 0.0, 1.5))
    sd = 0.08 / 4  # about the smoothed noise
    halves = split_pair(smoothed, part, sd, DT_MS, PX_UM, RULE)
    assert halves is not None and set(np.unique(halves[part])) == {1, 2}
    assert not halves[~part].any()
    for changed in ({"min_separation_um": 3.0}, {"min_gain_fraction": 0.5},
                    {"min_peak_sd": 1e4}, {"min_peak_ratio": 0.99},
                    {"min_excess_explained": 1.5}, {"min_delay_ms": 30.0},
                    {"max_width_ratio": 1.0 - 1e-9}):
        rule = dataclasses.replace(RULE, **changed)
        assert split_pair(smoothed, part, sd, DT_MS, PX_UM, rule) is None, changed
    assert split_pair(smoothed, part, float("nan"), DT_MS, PX_UM, RULE) is None
    # the second spark of the pair peaks 12 ms after the first, at a comparable width
    fitted = features(fit_pair(smoothed, part, DT_MS, PX_UM), int(part.sum()), sd, DT_MS, PX_UM)
    assert 8.0 < fitted["delay_ms"] < 16.0 and fitted["width_ratio"] < 1.5
    assert split_pair(smoothed, part, sd, DT_MS, PX_UM,
                      dataclasses.replace(RULE, min_delay_ms=5.0, max_width_ratio=2.0)) is not None


def _smoothed(clean: np.ndarray, seed: int = 3) -> np.ndarray:
    return ndimage.gaussian_filter((clean + _noise(seed)[:, None, :]).astype(np.float32),
                                   (3.0, 0.0, 1.5))


def test_a_second_shape_explains_a_pair_but_only_one_lump_of_a_lumpy_spark():
    """A recorded spark shape carries the noise of its recording: lumps that scale with it.
    Two shapes explain nearly all of a pair's misfit beyond the noise, and only part of a
    lumpy single spark's, however much they gain over one shape there."""
    sd = 0.08 / 4
    pair = _pair()[:, None, :]
    fit = fit_pair(_smoothed(pair), pair > 0.2, DT_MS, PX_UM)
    assert excess_explained(fit, int((pair > 0.2).sum()), sd) > 0.9
    single = _spreading_spark()[:, None, :]
    lumps = ndimage.gaussian_filter(np.random.default_rng(1).standard_normal(single.shape),
                                    (1.0, 0.0, 1.0))
    lumpy = single + 0.25 * single.max() * lumps / lumps.std() * np.clip(
        single / (0.05 * single.max()), 0.0, 1.0)
    part = single > 0.2
    fit = fit_pair(_smoothed(lumpy), part, DT_MS, PX_UM)
    assert fit.gain / fit.signal > 0.015  # the gain alone would split it
    assert excess_explained(fit, int(part.sum()), sd) < 0.6
    rule = dataclasses.replace(RULE, min_separation_um=0.0, min_peak_ratio=0.0,
                               min_excess_explained=0.7)
    assert split_pair(_smoothed(lumpy), part, sd, DT_MS, PX_UM, rule) is None
    assert split_pair(_smoothed(pair), pair > 0.2, sd, DT_MS, PX_UM, rule) is not None


def test_the_fit_uses_the_exact_derivatives_of_its_shapes():
    rng = np.random.default_rng(0)
    t, x = rng.uniform(0, 60, 300), rng.uniform(0, 30, 300)
    p = np.array([1.2, 12, 4, 10, 3, 15, 0.1, 0.8, 18, 5, 20, 2, 30.0, 0.0])
    numeric = np.zeros((300, len(p)))
    for k in range(len(p)):
        step = np.zeros_like(p)
        step[k] = 1e-6 * max(1.0, abs(p[k]))
        numeric[:, k] = (_model(p + step, t, x) - _model(p - step, t, x)) / (2 * step[k])
    np.testing.assert_allclose(_jacobian(p, t, x), numeric, atol=1e-7)


def test_the_rule_choice_counts_each_fit_by_the_annotation_under_its_peaks():
    from offline.experiments.pair_splitting import rank, splits

    def fit(label, gain, sep, peak_sd=20.0, ratio=0.8, excess=0.9, delay=12.0, width=1.2):
        return {"label": label, "gain_fraction": gain, "separation_um": sep,
                "peak_sd": peak_sd, "peak_ratio": ratio, "excess_explained": excess,
                "delay_ms": delay, "width_ratio": width}

    dev = [fit("two", 0.03, 1.5), fit("two", 0.02, 1.1), fit("same", 0.02, 0.7),
           fit("same", 0.005, 1.5), fit("other", 0.04, 1.3, peak_sd=3.0)]
    assert splits(dev, PairRule(0.015)) == {"two": 2}
    assert splits(dev, PairRule(0.0, min_separation_um=0.6, min_peak_sd=0.0)) == {
        "two": 2, "same": 2, "other": 1}
    net, best, counts = rank({"development": dev, "simulator": []})[0]
    assert net == 2 and counts["development"] == {"two": 2}
    assert best.min_separation_um <= 1.1 and best.min_gain_fraction <= 0.02
    assert splits(dev, best)["same"] == 0
    # a lumpy copy of the development set counts too: its split single spark costs a point
    lumpy = dev + [fit("same", 0.03, 1.5, excess=0.4)]
    net, best, counts = rank({"development": dev, "development, template noise": lumpy})[0]
    assert net == 4 and best.min_excess_explained > 0.4


def test_two_shapes_fitted_to_one_top_peak_together_and_a_delay_rule_keeps_them_whole():
    """Two neighbours releasing at the same moment (or one wide spark) give two shapes that
    peak together: no release triggered the other, and a rule asking a delay keeps them one."""
    clean = (gaussian_spark(SHAPE, 60, 10.0, amp=1.5, tau_ms=25.0)
             + gaussian_spark(SHAPE, 60, 12.0, amp=1.2, tau_ms=25.0))[:, None, :]
    part = clean > 0.2
    smoothed = _smoothed(clean)
    sd = 0.08 / 4
    fitted = features(fit_pair(smoothed, part, DT_MS, PX_UM), int(part.sum()), sd, DT_MS, PX_UM)
    assert fitted["delay_ms"] < 3.0
    rule = PairRule(0.0, min_separation_um=0.0, min_peak_sd=0.0, min_peak_ratio=0.0)
    assert split_pair(smoothed, part, sd, DT_MS, PX_UM, rule) is not None  # the rest would
    assert split_pair(smoothed, part, sd, DT_MS, PX_UM,
                      dataclasses.replace(rule, min_delay_ms=5.0)) is None


def test_a_second_rule_for_faint_pairs_splits_what_the_first_keeps_whole():
    """``pair_split_faint_*``: the first rule asks more of the lower peak than this pair has;
    the faint rule accepts it on its stricter other conditions, and only where it is set."""
    from engine.region_instances import pair_rules

    clean = _pair()
    noisy = clean + _noise()
    strict = dict(PAIR_SPLIT, pair_split_min_peak_sd=1e4)  # no lower peak is that high
    assert len(_events(noisy, clean, **strict)) == 1
    faint = dict(strict, pair_split_faint_min_peak_sd=5.0)
    assert len(_events(noisy, clean, **faint)) == 2
    # the faint rule's own conditions hold it back too: the pair peaks 12 ms apart
    assert len(_events(noisy, clean, **faint, pair_split_faint_min_delay_ms=20.0)) == 1
    config = dataclasses.replace(FRAMES, **faint)
    first, second = pair_rules(config)
    assert (first.min_peak_sd, second.min_peak_sd) == (1e4, 5.0)
    assert (second.min_gain_fraction, second.min_peak_ratio) == (0.015, first.min_peak_ratio)
    assert len(pair_rules(dataclasses.replace(FRAMES, **strict))) == 1
    assert pair_rules(FRAMES) == ()  # the split off


def test_the_faint_rule_choice_counts_what_either_rule_splits():
    from offline.experiments.pair_splitting import rank_faint, splits

    def fit(label, peak_sd, delay=12.0, width=1.2, excess=0.9, sep=1.5):
        return {"label": label, "gain_fraction": 0.05, "separation_um": sep,
                "peak_sd": peak_sd, "peak_ratio": 0.8, "excess_explained": excess,
                "delay_ms": delay, "width_ratio": width}

    first = PairRule(0.015, min_separation_um=0.6, min_peak_sd=10.0, min_delay_ms=5.0,
                     max_width_ratio=2.0)
    dev = [fit("two", 20.0), fit("two", 7.0), fit("two", 6.5, delay=11.0),
           fit("same", 7.5, delay=6.0), fit("other", 6.0, width=1.8)]
    assert splits(dev, first) == {"two": 1}
    net, best, counts = rank_faint({"development": dev, "simulator": []}, first)[0]
    assert net == 3 and counts["development"] == {"two": 3}
    assert best.min_peak_sd <= 6.5 and best.min_delay_ms > 6.0 and best.max_width_ratio < 1.8
    assert (best.min_gain_fraction, best.min_peak_ratio) == (0.015, first.min_peak_ratio)


def test_each_spark_of_a_split_pair_is_measured_on_its_own_signal():
    """``pair_split_deblend_fraction``: each half is characterized on the ΔF/F0 less the other
    half's fitted shape, so the earlier spark's peak is its own and not its neighbour's top
    (the pair's truth: peaks at 66 and 78 ms, 10.0 and 11.4 µm, 10-90 % rise 5.4 ms)."""
    from engine.characterize import characterize

    clean = _pair()
    noisy = clean + _noise()
    events = _events(noisy, clean, **PAIR_SPLIT, pair_split_deblend_fraction=1.0)
    assert len(events) == 2
    first, second = sorted((characterize(e, PX_UM, DT_MS) for e in events),
                           key=lambda c: c["t_peak_ms"])
    for measured, (t_ms, x_um) in ((first, FIRST), (second, SECOND)):
        assert abs(measured["t_peak_ms"] - (t_ms + 6.0)) <= 3.0, measured
        assert abs(measured["x_um"] - x_um) <= 0.5, measured
        assert 0.7 * 5.4 <= measured["rise_ms"] <= 1.3 * 5.4, measured
    # the context the halves share is left as it was: without deblending each half's crop is a
    # view of it; with it, each half measures on its own copy
    shared = _events(noisy, clean, **PAIR_SPLIT)
    assert all(np.shares_memory(e.dff0, shared[0].dff0) for e in shared)
    assert not np.shares_memory(events[0].dff0, events[1].dff0)
