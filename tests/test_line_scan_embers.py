"""offline.experiments.line_scan_embers: the two scorings of one engine run (puffs a class, and
puffs as embers, i.e. sparks, on both sides)."""

from __future__ import annotations

from dataclasses import replace

from acquisition.simulate.linescan import simulate_linescan
from acquisition.simulate.params import PHENOTYPES, LinescanParams
from engine.events import Event
from offline.datasets import LabeledRecording
from offline.experiments.line_scan_embers import as_sparks, compare


def _event(kind: str) -> Event:
    return Event(event_id=1, kind=kind, t_start_ms=0.0, t_peak_ms=10.0, t_end_ms=90.0,
                 x_um=1.0, y_um=float("nan"), amplitude_dff0=0.3, fwhm_um=3.0, fdhm_ms=80.0,
                 rise_ms=30.0, t50_ms=40.0)


def test_as_sparks_renames_puffs_only_in_copies() -> None:
    events = [_event("puff"), _event("spark"), _event("wave")]
    assert [e.kind for e in as_sparks(events)] == ["spark", "spark", "wave"]
    assert [e.flags for e in as_sparks(events)] == ["ember", "", ""]
    assert [e.kind for e in events] == ["puff", "spark", "wave"]


def test_off_keeps_the_simulators_puffs_and_embers_counts_them_as_sparks() -> None:
    stats = replace(PHENOTYPES["wt"], puff_rate_per_100um_s=6.0, spark_rate_per_100um_s=1.0)
    rec = LabeledRecording.from_simulation(
        simulate_linescan(LinescanParams(duration_s=2.0, stats=stats), seed=5), name="embers")
    n_puffs = sum(ev["kind"] == "puff" for ev in rec.events)
    n_sparks = sum(ev["kind"] == "spark" for ev in rec.events)
    assert n_puffs >= 1
    results = compare([rec])
    off, embers = results["off"].tables["annotated"], results["embers"].tables["annotated"]
    assert off["puff"]["total"] == n_puffs and off["spark"]["total"] == n_sparks
    assert embers["puff"]["total"] == 0 and embers["spark"]["total"] == n_sparks + n_puffs
    assert results["embers"].tables["predicted"]["puff"]["total"] == 0
