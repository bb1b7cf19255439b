"""A stream's summary row: cell class, event counts, spark frequency, parameter medians,
latency and the quality report (``summary.json``, ``serve``'s per-stream summaries)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from .analyzer import StreamAnalyzer
from .events import Event

CELL_F0_FRACTION = 0.3  # a column is inside the cell when its F0 exceeds this × p95 of F0


def cell_length_um(baseline_f0: np.ndarray | None, pixel_um: float) -> float:
    """Length of the cell along X from the baseline image (columns bright enough)."""
    if baseline_f0 is None:
        return math.nan
    f0 = np.asarray(baseline_f0, float)
    profile = f0 if f0.ndim == 1 else f0.max(axis=0)
    inside = profile > CELL_F0_FRACTION * np.percentile(profile, 95)
    return float(inside.sum() * pixel_um)


def spark_frequency(analyzer: StreamAnalyzer, n_sparks: int) -> float:
    """Sparks per 100 µm per s over the frames analyzed so far (cell length from F0)."""
    return _frequency(analyzer, n_sparks)[0]


def _frequency(analyzer: StreamAnalyzer, n_sparks: int) -> tuple[float, float, float]:
    """(sparks per 100 µm per s, cell length in µm, analyzed duration in s)."""
    from .characterize import spark_frequency_per_100um_s

    duration_s = analyzer.stats.frames_final * analyzer.info.dt_ms / 1e3
    length_um = cell_length_um(analyzer.baseline, analyzer.info.pixel_um)
    return spark_frequency_per_100um_s(n_sparks, length_um, duration_s), length_um, duration_s


def summarize_stream(analyzer: StreamAnalyzer, events: Iterable[Event],
                     counts: Mapping[str, int] | None = None) -> dict:
    """Per-cell summary row: classification, counts, spark frequency, medians, latency.

    ``counts`` (events by kind) when ``events`` is only a recent window of them
    (:class:`~engine.event_window.EventWindow`): the medians are then over that window.
    """
    from .report import parameter_medians

    info, stats = analyzer.info, analyzer.stats
    events = list(events)
    if counts is None:
        counts = Counter(e.kind for e in events)
    freq, length_um, duration_s = _frequency(analyzer, counts.get("spark", 0))
    cell = analyzer.cell_summary
    p50, p99 = stats.delay_percentiles()
    return {
        "stream": info.stream, "cell": info.cell,
        "label": cell.label if cell else "n/a", "confidence": cell.confidence if cell else None,
        "n_sparks": counts.get("spark", 0), "n_puffs": counts.get("puff", 0),
        "n_waves": counts.get("wave", 0),
        "freq": freq,
        "cell_length_um": length_um, "duration_s": duration_s,
        **parameter_medians(events), "lookahead_ms": analyzer.lookahead_ms,
        "delay_p50_ms": p50, "delay_p99_ms": p99, "detector": analyzer.detector.name,
        "quality": analyzer.quality_report(),
    }
