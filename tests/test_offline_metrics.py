"""Metrics on hand-made masks with known answers."""

import math
from functools import reduce

import numpy as np
import pytest

from offline import characterization_metrics, metrics


def _masks():
    true_inst = np.zeros((10, 20), np.int32)
    true_inst[1:4, 1:5] = 1   # spark, 12 px
    true_inst[5:9, 10:18] = 2  # wave, 32 px
    true_inst[0:2, 15:17] = 3  # spark, 4 px (missed)
    true_cls = {1: "spark", 2: "wave", 3: "spark"}
    pred_inst = np.zeros_like(true_inst)
    pred_inst[1:4, 2:4] = 7    # inside true 1: IoMin = 6/6 = 1
    pred_inst[5:9, 10:12] = 8  # inside true 2 but called spark: IoMin = 8/8
    pred_inst[6:8, 0:2] = 9    # false positive puff
    pred_cls = {7: "spark", 8: "spark", 9: "puff"}
    return true_inst, true_cls, pred_inst, pred_cls


def test_pixel_iou_known_values_and_ignore():
    t = np.array([[0, 1, 1, 4], [0, 2, 2, 0]], np.uint8)
    p = np.array([[0, 1, 0, 1], [1, 2, 2, 0]], np.uint8)
    iou = metrics.pixel_iou(t, p)
    assert iou["spark"] == pytest.approx(1 / 3)  # the ignore pixel (predicted 1) is excluded
    assert iou["wave"] == 1.0
    assert math.isnan(iou["puff"])
    assert iou["event"] == pytest.approx(3 / 5)
    assert iou["background"] == pytest.approx(2 / 4)


def test_iomin_matching_and_tables():
    t, tc, p, pc = _masks()
    m = metrics.match_instances(t, tc, p, pc)
    assert set(m.pairs) == {(1, 7), (2, 8)}
    assert m.pairs[(1, 7)][1] == 1.0
    tables = metrics.confusion_tables(m)
    ann, pred = tables["annotated"], tables["predicted"]
    assert ann["spark"] == {"spark": 1, "wave": 0, "puff": 0, "undetected": 1, "total": 2}
    assert ann["wave"] == {"spark": 1, "wave": 0, "puff": 0, "undetected": 0, "total": 1}
    assert pred["spark"] == {"spark": 1, "wave": 1, "puff": 0, "unmatched": 0, "total": 2}
    assert pred["puff"]["unmatched"] == 1
    scores = metrics.detection_scores(tables)
    assert scores["spark"]["recall"] == 0.5
    assert scores["spark"]["precision"] == 0.5
    assert scores["spark"]["f1"] == pytest.approx(0.5)
    assert scores["wave"]["f1"] == 0.0
    assert scores["puff"]["f1"] == 0.0
    assert scores["average"]["f1"] == pytest.approx(0.5 / 3)


def test_iomin_below_threshold_does_not_match():
    t = np.zeros((4, 10), np.int32)
    t[:, 0:4] = 1
    p = np.zeros_like(t)
    p[:, 3:8] = 1  # overlap 4 px, min size 16 -> 0.25
    m = metrics.match_instances(t, {1: "spark"}, p, {1: "spark"})
    assert not m.pairs


def test_ignore_region_drops_predictions():
    t, tc, p, pc = _masks()
    ignore = np.zeros(t.shape, bool)
    ignore[6:8, 0:2] = True
    m = metrics.match_instances(t, tc, p, pc, ignore_mask=ignore)
    assert 9 not in m.pred_classes


def test_perfect_prediction_scores_one():
    t, tc, _, _ = _masks()
    tables = metrics.confusion_tables(metrics.match_instances(t, tc, t, tc))
    scores = metrics.detection_scores(tables)
    assert scores["spark"]["f1"] == 1.0 and scores["wave"]["f1"] == 1.0
    assert math.isnan(scores["puff"]["f1"])
    assert scores["average"]["f1"] == 1.0


def test_instance_classes_and_class_mask_roundtrip():
    t, tc, _, _ = _masks()
    cls_mask = metrics.class_mask_from_instances(t, tc)
    assert metrics.instance_classes(t, cls_mask) == tc


def test_characterization_errors():
    t, tc, p, pc = _masks()
    m = metrics.match_instances(t, tc, p, pc)
    true_ev = {1: {"amplitude_dff0": 1.0, "fwhm_um": 2.0}}
    pred_ev = {7: {"amplitude_dff0": 1.1, "fwhm_um": float("nan")}}
    pairs = characterization_metrics.characterization_pairs(m, true_ev, pred_ev)
    err = characterization_metrics.characterization_errors(pairs, ("amplitude_dff0", "fwhm_um"))
    assert err["amplitude_dff0"]["median_rel_error"] == pytest.approx(0.1)
    assert err["fwhm_um"]["n"] == 0


def test_add_tables():
    t, tc, p, pc = _masks()
    tab = metrics.confusion_tables(metrics.match_instances(t, tc, p, pc))
    both = metrics.add_tables(tab, tab)
    assert both["annotated"]["spark"]["total"] == 4


def test_resolution_counts_see_values_reported_below_the_sampling():
    """A true rise under 2 samples with a value (a guess) and a resolvable t50 left empty
    are counted; the median errors see the guess as an error like any other and never see
    the empty value."""
    from offline.characterization_metrics import resolution_counts

    nan = float("nan")
    truth = {"amplitude_dff0": 1.0, "fwhm_um": 1.0, "fdhm_ms": 30.0, "rise_ms": 9.0,
             "t50_ms": 20.0}
    guessed = dict(truth, rise_ms=14.0, t50_ms=nan)
    emptied = dict(truth, rise_ms=nan)
    counts = resolution_counts([(truth, guessed), (truth, emptied)], dt_ms=5.0, pixel_um=0.2)
    assert counts["rise_ms"] == [1, 2, 0, 0]
    assert counts["t50_ms"] == [0, 0, 1, 2]
    assert counts["fwhm_um"] == [0, 0, 0, 2]
    assert "amplitude_dff0" not in counts


def test_errors_where_the_true_value_is_resolvable_leave_out_guesses():
    """At 10 ms per sample a true rise of 19 ms lies under the resolution: its reported
    value (a guess, +58 %) counts among all pairs but not among the resolvable ones; the
    amplitude has no resolution and keeps every pair; the FWHM's is in pixels."""
    from offline.characterization_metrics import (
        characterization_errors,
        resolvable_errors,
        summarize_errors,
    )

    truth = {"amplitude_dff0": 1.0, "fwhm_um": 0.3, "fdhm_ms": 40.0, "rise_ms": 19.0,
             "t50_ms": 30.0}
    guess = dict(truth, amplitude_dff0=1.1, fwhm_um=0.33, rise_ms=30.0)
    wide = dict(truth, fwhm_um=2.0, rise_ms=40.0)
    measured = dict(wide, amplitude_dff0=0.9, fwhm_um=2.2, rise_ms=44.0)
    pairs = [(truth, guess), (wide, measured)]

    every = characterization_errors(pairs)
    assert every["rise_ms"]["n"] == 2
    assert every["rise_ms"]["median_bias"] == pytest.approx((11 / 19 + 0.1) / 2)

    kept = summarize_errors(resolvable_errors(pairs, dt_ms=10.0, pixel_um=0.2))
    assert kept["rise_ms"]["n"] == 1 and kept["rise_ms"]["median_bias"] == pytest.approx(0.1)
    assert kept["fwhm_um"]["n"] == 1 and kept["fwhm_um"]["median_rel_error"] == pytest.approx(0.1)
    assert kept["amplitude_dff0"]["n"] == 2
    assert kept["t50_ms"]["n"] == 2


def _table(found: int, n_true: int, correct: int, n_pred: int) -> dict:
    """A Table 2 with only sparks: ``found`` of ``n_true`` annotated, ``correct`` of ``n_pred``."""
    zero = dict.fromkeys(metrics.EVENT_CLASSES, 0)
    annotated = {c: {**zero, "undetected": 0, "total": 0} for c in metrics.EVENT_CLASSES}
    predicted = {c: {**zero, "unmatched": 0, "total": 0} for c in metrics.EVENT_CLASSES}
    annotated["spark"].update(spark=found, undetected=n_true - found, total=n_true)
    predicted["spark"].update(spark=correct, unmatched=n_pred - correct, total=n_pred)
    return {"annotated": annotated, "predicted": predicted}


def test_f1_interval_is_as_wide_as_the_recordings_disagree():
    """Recordings that agree give an interval around their F1 with no width; recordings that
    disagree (one fails) give a wide one that holds the pooled F1; one recording gives none;
    classes without any event are left out."""
    same = metrics.f1_intervals([_table(9, 10, 9, 10)] * 12)
    assert set(same) == {"spark"}
    assert same["spark"] == pytest.approx((0.9, 0.9))
    mixed = [_table(10, 10, 10, 10)] * 11 + [_table(2, 30, 2, 2)]
    pooled = metrics.detection_scores(reduce(metrics.add_tables, mixed))["spark"]["f1"]
    lo, hi = metrics.f1_intervals(mixed)["spark"]
    assert lo < pooled < hi and hi - lo > 0.1
    assert hi == pytest.approx(1.0)  # draws without the failing recording score 1
    assert metrics.f1_intervals([_table(9, 10, 9, 10)]) == {}
    assert metrics.f1_intervals(mixed, seed=3) == metrics.f1_intervals(mixed, seed=3)


def test_errors_by_significance_bands_the_matched_pairs_by_the_reported_significance():
    """Each band holds the pairs whose reported significance lies in it and their own errors;
    a pair without a significance is left out, an empty band is not listed."""
    pairs = [({"rise_ms": 10.0}, {"rise_ms": 15.0, "significance": 8.0}),  # +50 %, band 0-10
             ({"rise_ms": 10.0}, {"rise_ms": 11.0, "significance": 60.0}),  # +10 %, band 50-
             ({"rise_ms": 10.0}, {"rise_ms": 9.0, "significance": 70.0}),  # -10 %, band 50-
             ({"rise_ms": 10.0}, {"rise_ms": 30.0})]  # no significance: left out
    bands = characterization_metrics.errors_by_significance(pairs)
    assert [(b["lo"], b["hi"], b["n"]) for b in bands] == [(0.0, 10.0, 1), (50.0, None, 2)]
    assert bands[0]["errors"]["rise_ms"]["median_rel_error"] == pytest.approx(0.5)
    assert bands[1]["errors"]["rise_ms"]["median_rel_error"] == pytest.approx(0.1)
    assert bands[1]["errors"]["rise_ms"]["median_bias"] == pytest.approx(0.0)
