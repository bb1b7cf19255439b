"""Sparks too brief or too narrow to be sparks (engine.spark_size) and the experiment's
rescoring variant (offline.experiments.spark_minimum_size)."""

from __future__ import annotations

import math

import numpy as np

from engine.events import Event
from engine.spark_size import too_small
from offline.experiments.spark_minimum_size import floors


def _event(event_id: int, kind: str, fdhm_ms: float, fwhm_um: float) -> Event:
    return Event(event_id=event_id, kind=kind, t_start_ms=0.0, t_peak_ms=1.0, t_end_ms=2.0,
                 x_um=0.0, y_um=math.nan, amplitude_dff0=1.0, fwhm_um=fwhm_um,
                 fdhm_ms=fdhm_ms, rise_ms=1.0, t50_ms=1.0)


def test_only_sparks_measured_below_a_floor_are_dropped_with_their_pixels():
    brief = _event(1, "spark", 6.0, 1.5)
    narrow = _event(2, "spark", 30.0, 0.4)
    unmeasured = _event(3, "spark", math.nan, math.nan)
    wave = _event(4, "wave", 6.0, 0.4)
    spark = _event(5, "spark", 30.0, 1.5)
    def small(event, fdhm, fwhm):
        return too_small(event.to_dict(), fdhm, fwhm)

    assert small(brief, 10.0, None) and not small(brief, None, 0.7)
    assert small(narrow, None, 0.7) and not small(narrow, 10.0, None)
    assert not small(unmeasured, 10.0, 0.7)  # not measured: kept
    assert not small(wave, 10.0, 0.7) and not small(spark, 10.0, 0.7)
    labels = np.array([[1, 2, 3], [4, 5, 0]])
    events = [brief, narrow, unmeasured, wave, spark]
    kept, kept_labels = floors(10.0, 0.7)(events, labels, None)
    assert [e.event_id for e in kept] == [3, 4, 5]
    np.testing.assert_array_equal(kept_labels, [[0, 0, 3], [4, 5, 0]])
    assert floors(None, None)(events, labels, None) == (events, labels)


def test_the_analyzer_drops_sparks_under_the_floors_and_counts_them() -> None:
    """Through the accept check: a spark is dropped and counted only where the model sets a
    floor its reported FDHM or FWHM lies under; a kind other than spark is never tested."""
    from engine.analyzer import StreamAnalyzer
    from engine.kind_rules import KindRules
    from tests.test_tails import DT_MS, _analyzer_stub, _instance

    def check(kind: str, floors) -> bool:
        stub = _analyzer_stub()
        stub._kind_rules = KindRules.for_stream({}, False, DT_MS)
        stub._spark_floors = floors
        small = StreamAnalyzer._too_small(stub, _instance(kind, False))
        assert stub.quality.events.rejected_too_small == int(small)
        return small

    assert check("spark", (None, None)) is False
    assert check("spark", (1e-3, 1e-3)) is False
    assert check("spark", (1e4, None)) is True  # briefer than 10 s
    assert check("spark", (None, 1e3)) is True  # narrower than 1 mm
    assert check("puff", (1e4, 1e3)) is False
