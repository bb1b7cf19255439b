"""Spark against puff by duration (engine/kind_rules.py): the rule itself, and that a model's
thresholds reach it through the analyzer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acquisition.simulate.burst import BLANK_COUNTS, burst_linescan
from acquisition.stream_kind import StreamKind
from engine.kind_rules import KIND_FLAG, PUFF_MIN_KEY, SPARK_MAX_KEY, kind_by_duration
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


def test_thresholds_reach_every_event_through_the_analyzer() -> None:
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
        assert after.kind == ("puff" if long else before.kind)
        assert (KIND_FLAG in after.flags.split(";")) is long
    assert sum(e.kind == "puff" for e in ruled) > sum(e.kind == "puff" for e in plain)
    assert [e.kind for e in run(**{SPARK_MAX_KEY: 1e6})].count("puff") == 0
