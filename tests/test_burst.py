"""A burst of candidate events does not stall a stream (issue 12, Build 5): beyond the
characterization budget candidates are reported with position and time only, flagged, and the
stream says ``burst``. The time it takes is measured by ``bench/burst.py``, not here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acquisition.simulate.burst import BLANK_COUNTS, burst_linescan
from acquisition.stream_kind import StreamKind
from engine.burst import (
    BURST_FLAG,
    DEFAULT_BUDGETS,
    BudgetLimits,
    CharacterizationBudget,
    default_budget,
)
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array
from engine.serve import Server
from engine.sinks import SinkSet
from tests.serve_helpers import MemorySink, StubIngest, chunk_item, start_item, stop_item

PIXEL_UM, DT_MS = 0.14, 1.5


@pytest.fixture(scope="module")
def burst() -> tuple[np.ndarray, int]:
    return burst_linescan(n_sparks=640, seed=1)


def test_budget_refills_with_data_time() -> None:
    budget = CharacterizationBudget(BudgetLimits(capacity=3, rate_per_s=10), dt_ms=10.0)
    assert [budget.take(0) for _ in range(4)] == [True, True, True, False]
    assert budget.take(10)  # 10 frames = 0.1 s of data = one token
    assert not budget.take(10)
    assert budget.take(1000) and budget.tokens == pytest.approx(2.0)  # capped at capacity
    assert budget.n_over == 2


def test_the_default_budget_grows_with_the_extent_of_the_frame() -> None:
    """A longer line (or larger field) holds more sparks at the same rate per µm; a shorter
    one keeps the defaults."""
    line = DEFAULT_BUDGETS[StreamKind.LINESCAN]
    assert default_budget(StreamKind.LINESCAN, (512,), 0.2) == line
    assert default_budget(StreamKind.LINESCAN, (256,), 0.2) == line
    assert default_budget(StreamKind.LINESCAN, (1024,), 0.2) == BudgetLimits(
        2 * line.capacity, 2 * line.rate_per_s)
    assert default_budget(StreamKind.LINESCAN, (2048,), 0.05) == line  # the same 102 µm
    field = DEFAULT_BUDGETS[StreamKind.MOVIE]
    assert default_budget(StreamKind.MOVIE, (64, 512), 0.2) == field
    assert default_budget(StreamKind.MOVIE, (128, 512), 0.2).rate_per_s == pytest.approx(
        2 * field.rate_per_s)


def test_a_long_line_spends_its_larger_budget() -> None:
    """The same burst on a line twice the reference length: more candidates are characterized
    than the reference budget allows, and no more than the line's own budget."""
    data, quiet = burst_linescan(n_sparks=300, n_pixels=1024, seed=2, quiet_lines=200,
                                 after_lines=200)
    events = analyze_array(data, StreamKind.LINESCAN, 0.2, DT_MS, detector="classical",
                           blank=BLANK_COUNTS).events
    seconds = len(data) * DT_MS / 1e3
    characterized = sum(not _is_burst(e) for e in events)
    reference = DEFAULT_BUDGETS[StreamKind.LINESCAN]
    assert characterized > reference.capacity + reference.rate_per_s * seconds + 1
    limits = default_budget(StreamKind.LINESCAN, (1024,), 0.2)
    assert characterized <= limits.capacity + limits.rate_per_s * seconds + 1
    assert any(_is_burst(e) for e in events)


def _is_burst(event) -> bool:
    return BURST_FLAG in event.flags.split(";")


def test_burst_of_500_candidates_completes_and_is_flagged(burst) -> None:
    data, quiet = burst
    sink = MemorySink()
    server = Server(StubIngest(), DetectorFactory(EngineConfig(detector="classical")),
                    SinkSet([sink]), stats_interval_s=0.0)
    server.handle(start_item("bursty", data, PIXEL_UM, DT_MS, blank=BLANK_COUNTS))
    server.handle(chunk_item("bursty", 1, 0, data[:quiet]))
    server.handle(chunk_item("bursty", 2, quiet, data[quiet:]))  # the whole burst in one block
    server._periodic()
    server.handle(stop_item("bursty", len(data)))

    events = sink.events["bursty"]
    flagged = [e for e in events if _is_burst(e)]
    assert len(events) >= 500 and flagged
    limits = default_budget(StreamKind.LINESCAN, data.shape[1:], PIXEL_UM)
    characterized = len(events) - len(flagged)
    assert characterized <= limits.capacity + limits.rate_per_s * len(data) * DT_MS / 1e3 + 1
    for event in flagged:  # position and time, no parameters
        assert math.isfinite(event.t_peak_ms) and math.isfinite(event.x_um)
        assert all(math.isnan(getattr(event, name)) for name in
                   ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms"))
    stats = sink.stats["bursty"]
    assert any(s["burst"] for s in stats)
    assert stats[-1]["events_not_characterized"] == len(flagged)
    quality = stats[-1]["quality"]
    assert quality["events"]["not_characterized_burst"] == len(flagged)
    assert any("burst" in w for w in quality["warnings"])


def test_burst_budget_does_not_depend_on_chunking(burst) -> None:
    """The budget runs on frame indices: ``analyze`` and ``serve`` (any chunk size) spend it on
    the same events."""
    data, _ = burst
    runs = [analyze_array(data[:3600], StreamKind.LINESCAN, PIXEL_UM, DT_MS, detector="classical",
                          blank=BLANK_COUNTS, chunk_frames=chunk).events for chunk in (97, 4096)]
    assert any(_is_burst(e) for e in runs[0])
    assert [repr(e.to_dict()) for e in runs[0]] == [repr(e.to_dict()) for e in runs[1]]
