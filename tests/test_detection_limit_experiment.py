"""offline.experiments.detection_limit: annotated sparks binned by peak ΔF/F0 over the limit."""

from __future__ import annotations

import numpy as np

from engine.events import Event
from offline.datasets import LabeledRecording
from offline.experiments.detection_limit import spark_rows, table


def _event(event_id: int, kind: str) -> Event:
    return Event(event_id=event_id, kind=kind, t_start_ms=0.0, t_peak_ms=1.0, t_end_ms=2.0,
                 x_um=0.0, y_um=0.0, amplitude_dff0=1.0, fwhm_um=1.0, fdhm_ms=1.0,
                 rise_ms=1.0, t50_ms=1.0, significance=10.0)


def test_sparks_are_binned_by_their_amplitude_over_the_limit_and_counted_when_found():
    instance = np.zeros((10, 4, 30), np.int32)
    instance[1:4, 1:3, 0:4] = 1    # bright spark, found as a spark
    instance[1:4, 1:3, 10:14] = 2  # faint spark, missed
    instance[5:9, 1:3, 20:24] = 3  # middling spark, found but named puff
    instance[5:9, :, 26:30] = 4    # a wave: not a spark row
    rec = LabeledRecording(
        data=np.zeros(instance.shape, np.uint16), class_mask=np.zeros(instance.shape, np.uint8),
        instance_mask=instance, pixel_um=0.2, dt_ms=10.0, axes="TYX",
        events=[{"event_id": 1, "kind": "spark", "amplitude_dff0": 2.8},
                {"event_id": 2, "kind": "spark", "amplitude_dff0": 0.2},
                {"event_id": 3, "kind": "spark", "amplitude_dff0": 0.7},
                {"event_id": 4, "kind": "wave", "amplitude_dff0": 1.5}])
    labels = np.zeros_like(instance)
    labels[1:4, 1:3, 0:4] = 7
    labels[5:9, 1:3, 20:24] = 8
    rows = spark_rows(rec, [_event(7, "spark"), _event(8, "puff")], labels, limit=0.8)
    assert [(round(r["ratio"], 3), r["as_spark"], r["any"]) for r in rows] == [
        (3.5, True, True), (0.25, False, False), (0.875, False, True)]
    assert table(rows) == [
        "0-0.5: 0 of 1 found as sparks (0 %; any class 0 %)",
        "0.5-1: 0 of 1 found as sparks (0 %; any class 100 %)",
        "3-5: 1 of 1 found as sparks (100 %; any class 100 %)"]
