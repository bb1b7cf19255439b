"""The dashboard's parameter histograms (ui.plots.histograms_figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ui.plots import HISTOGRAM_COLUMNS, histograms_figure


def _events(values: dict[str, list[float]], kinds: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"kind": kinds, **values})


def test_identical_values_get_a_readable_axis_around_them():
    """All events with the same rise (e.g. one event): the axis spans the value ±5 % with
    plain tick labels, not a 1e-9-wide range with an offset label."""
    columns = [column for column, _ in HISTOGRAM_COLUMNS]
    events = _events({c: [4.41, 4.41, 4.41] for c in columns}, ["spark", "spark", "puff"])
    fig = histograms_figure(events)
    fig.canvas.draw()
    for ax in fig.axes[:len(columns)]:
        lo, hi = ax.get_xlim()
        assert lo < 4.41 < hi
        assert hi - lo >= 0.05 * 4.41
        assert ax.xaxis.get_offset_text().get_text() == ""
        heights = sum(patch.get_height() for patch in ax.patches)
        assert heights == 3  # every event is counted


def test_spread_values_keep_their_range_and_counts():
    rng = np.random.default_rng(0)
    columns = [column for column, _ in HISTOGRAM_COLUMNS]
    values = {c: list(rng.normal(10.0, 2.0, 200)) for c in columns}
    fig = histograms_figure(_events(values, ["spark"] * 200))
    for ax in fig.axes[:len(columns)]:
        lo, hi = ax.get_xlim()
        assert lo < 6.0 and hi > 14.0
        assert 196 <= sum(patch.get_height() for patch in ax.patches) <= 200  # 0.5 % tails cut


def test_two_events_are_drawn_not_clipped_away():
    """Two sparks and a wave without a FWHM (a live stream's first events): interpolated
    0.5/99.5 % bounds fell strictly between the two FWHMs and dropped both, and the stacked
    histogram of nothing raised in matplotlib."""
    columns = [column for column, _ in HISTOGRAM_COLUMNS]
    values = {c: [1.84, 1.90, np.nan] for c in columns}
    fig = histograms_figure(_events(values, ["spark", "spark", "wave"]))
    for ax in fig.axes[:len(columns)]:
        assert sum(patch.get_height() for patch in ax.patches) == 2
