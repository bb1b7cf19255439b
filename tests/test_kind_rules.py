"""Spark against puff by duration and rise (engine/kind_rules.py): the rules themselves, and that
a model's thresholds reach them through the analyzer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acquisition.labels import PUFF
from acquisition.simulate.burst import BLANK_COUNTS, burst_linescan
from acquisition.stream_kind import StreamKind
from engine.kind_rules import (
    EMBER_FLAG,
    KIND_FLAG,
    PUFF_MIN_KEY,
    PUFF_MIN_ONSET_KEY,
    PUFF_MIN_RISE_KEY,
    PUFF_RISE_SAMPLES_KEY,
    RISE_FLAG,
    SPARK_MAX_KEY,
    WAVE_MIN_FDHM_KEY,
    WIDTH_FLAG,
    KindRules,
    is_ember,
    kind_by_duration,
)
from engine.pipeline import analyze_array


def _fields(kind: str, fdhm_ms: float, flags: str = "") -> dict:
    return {"kind": kind, "fdhm_ms": fdhm_ms, "flags": flags}


@pytest.mark.parametrize(("kind", "fdhm", "expected"), [
    ("spark", 35.0, "spark"), ("spark", 80.0, "puff"), ("spark", 70.0, "puff"),
    ("puff", 150.0, "puff"), ("puff", 25.0, "spark"), ("wave", 10.0, "wave"),
    ("wave", 500.0, "wave")])
def test_kind_follows_the_measured_duration(kind, fdhm, expected) -> None:
    fields = _fields(kind, fdhm, "rise_ms<2samples")
    kind_by_duration(fields, 70.0, 30.0)
    assert fields["kind"] == expected
    changed = expected != kind
    assert (KIND_FLAG in fields["flags"].split(";")) is changed
    assert fields["flags"].startswith("rise_ms<2samples")  # earlier reasons are kept


def test_unmeasured_duration_or_no_threshold_keeps_the_kind() -> None:
    for fdhm in (math.nan, None):
        fields = _fields("spark", fdhm)
        kind_by_duration(fields, 10.0, None)
        assert fields == _fields("spark", fdhm)
    fields = _fields("spark", 500.0)
    kind_by_duration(fields, None, None)
    assert fields["kind"] == "spark" and fields["flags"] == ""


@pytest.mark.parametrize(("kind", "rise", "fdhm", "expected", "flag"), [
    ("spark", 20.0, 30.0, "spark", None), ("spark", 40.0, 30.0, "puff", RISE_FLAG),
    ("spark", 35.0, 30.0, "puff", RISE_FLAG), ("spark", math.nan, 30.0, "spark", None),
    ("spark", None, 30.0, "spark", None), ("puff", 5.0, 150.0, "puff", None),
    ("wave", 200.0, 500.0, "wave", None)])
def test_a_slow_rise_makes_a_spark_a_puff(kind, rise, fdhm, expected, flag) -> None:
    fields = {"kind": kind, "rise_ms": rise, "fdhm_ms": fdhm, "flags": "fwhm_um<2px"}
    # the FDHM rule would turn a 30-ms puff back into a spark: it must not undo the rise rule
    KindRules(spark_max_fdhm_ms=40.0, puff_min_rise_ms=35.0).apply(fields)
    assert fields["kind"] == expected
    tokens = fields["flags"].split(";")
    assert tokens[0] == "fwhm_um<2px"
    assert (RISE_FLAG in tokens) is (flag == RISE_FLAG)


@pytest.mark.parametrize(("onset_frames", "expected"), [
    (0.0, "spark"), (1.0, "spark"), (2.0, "puff"), (5.0, "puff")])
def test_a_slow_rise_counts_only_where_the_event_itself_rises(onset_frames, expected) -> None:
    """A spark detected at its peak whose measured foot lies frames before its own region began
    (a wave's tail before it) keeps its kind; one seen rising for two frames becomes a puff."""
    dt_ms = 17.0
    fields = {"kind": "spark", "rise_ms": 480.0, "fdhm_ms": 140.0, "flags": "",
              "t_start_ms": 1700.0, "t_peak_ms": 1700.0 + onset_frames * dt_ms}
    rules = KindRules.for_stream({PUFF_MIN_RISE_KEY: 35.0, PUFF_MIN_ONSET_KEY: 2.0},
                                 linescan=False, dt_ms=dt_ms)
    rules.apply(fields)
    assert fields["kind"] == expected
    assert (RISE_FLAG in fields["flags"].split(";")) is (expected == "puff")
    # without the frame interval, or with the check off, the rise alone decides
    for rules in (KindRules(puff_min_rise_ms=35.0, puff_min_onset_frames=2.0),
                  KindRules.for_stream({PUFF_MIN_RISE_KEY: 35.0}, linescan=False, dt_ms=dt_ms)):
        fields.update(kind="spark", flags="")
        rules.apply(fields)
        assert fields["kind"] == "puff"


@pytest.mark.parametrize(("dt_ms", "expected"), [
    (6.8, "puff"), (11.6, "puff"), (11.7, "spark"), (18.2, "spark")])
def test_a_slow_rise_counts_only_where_the_frames_resolve_the_threshold(dt_ms, expected) -> None:
    """At 35 ms and 3 frames the rule runs up to 11.67 ms per frame; slower, every measurable rise
    (at least two frames) would pass 35 ms, a spark's too, so the detector's kind stays."""
    rise_ms = max(40.0, 3 * dt_ms)
    fields = {"kind": "spark", "rise_ms": rise_ms, "fdhm_ms": 90.0, "flags": "",
              "t_start_ms": 0.0, "t_peak_ms": rise_ms}
    rules = KindRules.for_stream({PUFF_MIN_RISE_KEY: 35.0, PUFF_MIN_ONSET_KEY: 2.0,
                                  PUFF_RISE_SAMPLES_KEY: 3.0}, linescan=False, dt_ms=dt_ms)
    rules.apply(fields)
    assert fields["kind"] == expected
    assert (RISE_FLAG in fields["flags"].split(";")) is (expected == "puff")


@pytest.mark.parametrize(("kind", "fwhm", "expected"), [
    ("puff", 1.8, "spark"), ("puff", 2.5, "puff"), ("puff", 4.0, "puff"), ("puff", math.nan, "puff"),
    ("wave", 1.0, "wave")])
def test_a_narrow_puff_is_an_ember(kind, fwhm, expected) -> None:
    fields = {"kind": kind, "fwhm_um": fwhm, "fdhm_ms": 200.0, "rise_ms": 80.0, "flags": ""}
    # a long FDHM would make a spark a puff again: the width rule is not undone
    KindRules(puff_min_fdhm_ms=50.0, spark_max_fwhm_um=2.5).apply(fields)
    assert fields["kind"] == expected
    assert (WIDTH_FLAG in fields["flags"].split(";")) is (expected != kind)


@pytest.mark.parametrize(("fdhm", "expected"), [
    (25.0, "spark"), (59.9, "spark"), (60.0, "wave"), (400.0, "wave"), (math.nan, "wave"),
    (None, "wave")])
def test_a_wave_as_brief_as_a_spark_is_a_spark(fdhm, expected) -> None:
    fields = {"kind": "wave", "fwhm_um": 2.0, "fdhm_ms": fdhm, "rise_ms": 80.0, "flags": ""}
    # a long rise would make a spark a puff: the wave rule is not undone by the spark rules
    rules = KindRules.for_stream({WAVE_MIN_FDHM_KEY: 60.0, PUFF_MIN_RISE_KEY: 35.0}, linescan=False)
    rules.apply(fields)
    assert fields["kind"] == expected
    assert (KIND_FLAG in fields["flags"].split(";")) is (expected == "spark")
    for kind in ("spark", "puff"):  # the rule renames waves only
        other = {"kind": kind, "fwhm_um": 4.0, "fdhm_ms": 25.0, "rise_ms": 10.0, "flags": ""}
        KindRules(wave_min_fdhm_ms=60.0).apply(other)
        assert other["kind"] == kind and other["flags"] == ""


def test_the_packaged_line_scan_model_names_brief_waves_sparks() -> None:
    from engine.models.model_dir import ModelDir, default_model_path

    model = ModelDir.load(default_model_path(StreamKind.LINESCAN, "accurate"))
    assert KindRules.from_thresholds(model.thresholds).wave_min_fdhm_ms == 60.0


def test_rules_come_from_the_thresholds() -> None:
    rules = KindRules.from_thresholds({PUFF_MIN_RISE_KEY: 35.0, "foreground": 0.5})
    assert rules == KindRules(puff_min_rise_ms=35.0)
    fields = {"kind": "spark", "rise_ms": 80.0, "fdhm_ms": 200.0, "flags": ""}
    KindRules().apply(fields)
    assert fields["kind"] == "spark" and fields["flags"] == ""


def test_thresholds_reach_every_event_through_the_analyzer() -> None:
    """On a line-scan a spark the rules make a puff is reported as an ember: a spark flagged
    with the rule's reason and ``ember`` (line-scans have no puffs)."""
    data, _ = burst_linescan(n_sparks=40, seed=3)
    data = data[:3000]

    def run(**thresholds):
        return analyze_array(data, StreamKind.LINESCAN, 0.14, 1.5, detector="classical", blank=BLANK_COUNTS,
                             thresholds=thresholds).events

    plain = run()
    fdhm = np.array([e.fdhm_ms for e in plain if e.kind == "spark"], float)
    fdhm = fdhm[np.isfinite(fdhm)]
    assert fdhm.size >= 5
    cut = float(np.median(fdhm))
    ruled = run(**{PUFF_MIN_KEY: cut})
    assert len(ruled) == len(plain)
    for before, after in zip(plain, ruled, strict=True):
        long = before.kind == "spark" and math.isfinite(before.fdhm_ms) and before.fdhm_ms >= cut
        assert after.kind == before.kind
        tokens = after.flags.split(";")
        assert (KIND_FLAG in tokens) is long
        assert (EMBER_FLAG in tokens) is (long or EMBER_FLAG in before.flags.split(";"))
    assert sum(is_ember(e.to_dict()) for e in ruled) > sum(is_ember(e.to_dict()) for e in plain)
    assert all(e.kind != "puff" for e in [*plain, *ruled, *run(**{SPARK_MAX_KEY: 1e6})])
    rise = np.array([e.rise_ms for e in plain if e.kind == "spark"], float)
    rise = rise[np.isfinite(rise)]
    assert rise.size >= 5
    cut = float(np.median(rise))
    by_rise = run(**{PUFF_MIN_RISE_KEY: cut})
    for before, after in zip(plain, by_rise, strict=True):
        slow = before.kind == "spark" and math.isfinite(before.rise_ms) and before.rise_ms >= cut
        assert after.kind == before.kind
        assert (RISE_FLAG in after.flags.split(";")) is slow
        assert (EMBER_FLAG in after.flags.split(";")) is (slow or is_ember(before.to_dict()))
    assert any(RISE_FLAG in e.flags.split(";") for e in by_rise)
    # the onset check reaches the analyzer with the stream's frame interval: no event rises
    # for a million lines from its detected start, so none is renamed by its rise
    held = run(**{PUFF_MIN_RISE_KEY: cut, PUFF_MIN_ONSET_KEY: 1e6})
    assert not any(RISE_FLAG in e.flags.split(";") for e in held)


@pytest.mark.parametrize(("linescan", "kind", "expected"), [
    (True, "puff", "spark"), (True, "spark", "spark"), (True, "wave", "wave"),
    (False, "puff", "puff"), (False, "spark", "spark")])
def test_line_scans_report_puffs_as_embers(linescan, kind, expected) -> None:
    fields = {"kind": kind, "fwhm_um": 4.0, "fdhm_ms": 200.0, "rise_ms": 20.0,
              "flags": "t50_ms_unmeasured"}  # a rise under the rule's 35 ms
    KindRules.for_stream({PUFF_MIN_RISE_KEY: 35.0}, linescan=linescan).apply(fields)
    assert fields["kind"] == expected
    tokens = fields["flags"].split(";")
    assert tokens[0] == "t50_ms_unmeasured"
    assert (EMBER_FLAG in tokens) is (linescan and kind == "puff")
    assert is_ember(fields) is (linescan and kind == "puff")
    assert KindRules.for_stream({PUFF_MIN_RISE_KEY: 35.0}, linescan=False) == KindRules(
        puff_min_rise_ms=35.0)


def test_simulated_line_scan_puffs_come_out_as_embers_and_are_scored_as_sparks() -> None:
    """The training simulator's line-scan puffs (its embers) go through the engine as sparks
    flagged ``ember``, and the evaluation counts the annotated ones as sparks of subtype
    ``ember``."""
    from dataclasses import replace

    from acquisition.simulate.linescan import simulate_linescan
    from acquisition.simulate.params import PHENOTYPES, LinescanParams
    from offline.datasets import LabeledRecording
    from offline.evaluate import in_castream_vocabulary, score_recording

    stats = replace(PHENOTYPES["wt"], puff_rate_per_100um_s=6.0, spark_rate_per_100um_s=1.0)
    sim = simulate_linescan(LinescanParams(duration_s=3.0, stats=stats), seed=5)
    rec = LabeledRecording.from_simulation(sim)
    assert any(ev["kind"] == "puff" for ev in rec.events)
    mapped = in_castream_vocabulary(rec)
    assert not any(ev["kind"] == "puff" for ev in mapped.events)
    assert not np.any(mapped.class_mask == PUFF)
    embers = [ev for ev in mapped.events if ev.get("subtype") == "ember"]
    assert len(embers) == sum(ev["kind"] == "puff" for ev in rec.events)
    result = analyze_array(rec.data, StreamKind.LINESCAN, rec.pixel_um, rec.dt_ms,
                           detector="classical", blank=rec.blank)
    assert all(e.kind != "puff" for e in result.events)
    flagged = [e for e in result.events if is_ember(e.to_dict())]
    assert flagged and all(e.kind == "spark" for e in flagged)
    scored = score_recording(rec, result.events, np.asarray(result.labels))
    found = scored["subtypes"]["ember"]
    assert found[1] == len(embers) and found[0] >= 1
    assert scored["tables"]["annotated"]["puff"]["total"] == 0


def test_the_experiments_margin_is_counted_in_frames() -> None:
    from engine.events import Event
    from offline.experiments.kind_by_rise import rekind

    def event(rise_ms: float) -> Event:
        return Event(event_id=1, kind="spark", t_start_ms=0.0, t_peak_ms=10.0, t_end_ms=50.0,
                     x_um=1.0, y_um=1.0, amplitude_dff0=1.0, fwhm_um=1.5, fdhm_ms=30.0,
                     rise_ms=rise_ms, t50_ms=20.0, stream="s", cell="c", score=0.9,
                     significance=10.0, flags="")

    events = [event(20.0), event(40.0), event(50.0), event(math.nan)]
    assert [e.kind for e in rekind(events, 10.0, None)] == ["spark"] * 4
    assert [e.kind for e in rekind(events, 10.0, (35.0, 0, None))] == ["spark", "puff", "puff", "spark"]
    assert [e.kind for e in rekind(events, 10.0, (35.0, 1, None))] == ["spark", "spark", "puff", "spark"]
    assert [e.kind for e in events] == ["spark"] * 4  # copies: the engine's events stay as they were


def test_the_width_experiment_renames_only_narrow_puffs() -> None:
    from engine.events import Event
    from offline.experiments.kind_by_width import rewiden

    def event(kind: str, fwhm_um: float) -> Event:
        return Event(event_id=1, kind=kind, t_start_ms=0.0, t_peak_ms=50.0, t_end_ms=300.0,
                     x_um=1.0, y_um=math.nan, amplitude_dff0=0.3, fwhm_um=fwhm_um,
                     fdhm_ms=150.0, rise_ms=60.0, t50_ms=80.0, stream="s", cell="c",
                     score=0.9, significance=10.0, flags="")

    events = [event("puff", 1.5), event("puff", 4.0), event("spark", 1.5),
              event("puff", math.nan)]
    assert [e.kind for e in rewiden(events, 1.5, None)] == ["puff", "puff", "spark", "puff"]
    renamed = rewiden(events, 1.5, 3.0)
    assert [e.kind for e in renamed] == ["spark", "puff", "spark", "puff"]
    assert renamed[0].flags == WIDTH_FLAG and renamed[2].flags == ""


def test_the_wave_duration_experiment_renames_only_brief_waves() -> None:
    from engine.events import Event
    from offline.experiments.wave_duration import renamed

    def event(kind: str, fdhm_ms: float) -> Event:
        return Event(event_id=1, kind=kind, t_start_ms=0.0, t_peak_ms=50.0, t_end_ms=900.0,
                     x_um=1.0, y_um=math.nan, amplitude_dff0=0.3, fwhm_um=2.0,
                     fdhm_ms=fdhm_ms, rise_ms=60.0, t50_ms=20.0, stream="s", cell="c",
                     score=0.9, significance=10.0, flags="")

    events = [event("wave", 30.0), event("wave", 300.0), event("spark", 30.0),
              event("wave", math.nan)]
    assert [e.kind for e in renamed(events, None)] == ["wave", "wave", "spark", "wave"]
    out = renamed(events, 60.0)
    assert [e.kind for e in out] == ["spark", "wave", "spark", "wave"]
    assert out[0].flags == KIND_FLAG and out[2].flags == ""


def test_the_low_latency_wave_experiment_sets_the_network_trackers_width() -> None:
    from engine.models.postprocess_file import PostprocessParams
    from offline.experiments.low_latency_waves import with_width

    shipped = PostprocessParams(tracker_overrides={"hybrid": {"split_dip_sd": 3.0}})
    assert with_width(shipped, None) is shipped
    changed = with_width(shipped, 15.0)
    assert changed.tracker_for("network").wide_spark_is_wave_um == 15.0
    assert changed.tracker_for("hybrid").split_dip_sd == 3.0
    assert shipped.tracker_for("network").wide_spark_is_wave_um is None
