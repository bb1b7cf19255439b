"""castream evaluate: annotated sparks binned by peak ΔF/F0 over their recording's detection
limit (offline/evaluate.py ``recall_by_limit``)."""

from __future__ import annotations

import numpy as np

from engine.events import Event
from offline.datasets import LabeledRecording
from offline.evaluate import pool_results, score_recording
from offline.evaluate_report import format_tables


def _event(event_id: int, kind: str) -> Event:
    return Event(event_id=event_id, kind=kind, t_start_ms=0.0, t_peak_ms=1.0, t_end_ms=2.0,
                 x_um=0.0, y_um=0.0, amplitude_dff0=1.0, fwhm_um=1.0, fdhm_ms=1.0,
                 rise_ms=1.0, t50_ms=1.0, significance=10.0)


def test_castream_evaluate_counts_and_prints_recall_by_the_limit():
    """``score_recording`` bins the annotated sparks by the quality report's limit; the pooled
    result prints them (``castream evaluate``)."""
    instance = np.zeros((10, 4, 30), np.int32)
    instance[1:4, 1:3, 0:4] = 1
    instance[1:4, 1:3, 10:14] = 2
    rec = LabeledRecording(
        data=np.zeros(instance.shape, np.uint16), class_mask=np.zeros(instance.shape, np.uint8),
        instance_mask=instance, pixel_um=0.2, dt_ms=10.0, axes="TYX",
        events=[{"event_id": 1, "kind": "spark", "amplitude_dff0": 2.8},
                {"event_id": 2, "kind": "spark", "amplitude_dff0": 0.2}])
    labels = np.zeros_like(instance)
    labels[1:4, 1:3, 0:4] = 7
    scored = score_recording(rec, [_event(7, "spark")], labels,
                             {"resting_snr": 2.0, "detection_limit_dff0": 0.8})
    assert scored["by_limit"] == {"3-5": [1, 1, 1], "0-0.5": [0, 0, 1]}
    pooled = pool_results([scored, scored])
    assert pooled.by_limit == {"3-5": [2, 2, 2], "0-0.5": [0, 0, 2]}
    text = format_tables(pooled)
    assert "| 0-0.5 | 2 | 0 (0.0 %) | 0 (0.0 %) |" in text
    assert text.index("| 0-0.5 |") < text.index("| 3-5 |")
    assert "spark_recall_by_detection_limit" in pooled.to_dict()
    # without a limit (no quality report) nothing is binned
    assert "by_limit" not in score_recording(rec, [_event(7, "spark")], labels)
