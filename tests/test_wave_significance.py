"""offline.experiments.wave_significance: predicted waves sorted into real and no wave."""

from __future__ import annotations

import numpy as np

from engine.events import Event
from offline.datasets import LabeledRecording
from offline.experiments.wave_significance import summary, wave_rows


def _event(event_id: int, kind: str, significance: float) -> Event:
    return Event(event_id=event_id, kind=kind, t_start_ms=0.0, t_peak_ms=1.0, t_end_ms=2.0,
                 x_um=0.0, y_um=0.0, amplitude_dff0=1.0, fwhm_um=1.0, fdhm_ms=1.0,
                 rise_ms=1.0, t50_ms=1.0, significance=significance)


def test_a_wave_is_real_only_where_it_overlaps_an_annotated_wave():
    instance = np.zeros((10, 4, 20), np.int32)
    instance[2:8, :, 0:12] = 1     # annotated wave
    instance[1:3, 1:3, 15:17] = 2  # annotated spark
    rec = LabeledRecording(data=np.zeros((10, 4, 20), np.uint16),
                           class_mask=np.zeros((10, 4, 20), np.uint8), instance_mask=instance,
                           pixel_um=0.2, dt_ms=10.0, axes="TYX",
                           events=[{"event_id": 1, "kind": "wave"},
                                   {"event_id": 2, "kind": "spark"}])
    labels = np.zeros_like(instance)
    labels[3:6, :, 2:10] = 5        # over the wave
    labels[1:3, 1:3, 15:17] = 6     # over the spark: a wave that is not one
    labels[8:10, :, 14:20] = 7      # over nothing
    labels[3:4, 0:1, 0:1] = 8       # a spark over the wave: not a wave row
    events = [_event(5, "wave", 40.0), _event(6, "wave", 9.0), _event(7, "wave", 7.5),
              _event(8, "spark", 12.0)]
    assert wave_rows(rec, events, labels) == [(5, 40.0, True), (6, 9.0, False),
                                              (7, 7.5, False)]
    rows = [("r", *row) for row in wave_rows(rec, events, labels)]
    assert summary(rows) == "real: 1, significance 40.0–40.0; no wave: 2, significance 7.5–9.0"
