"""offline.experiments.characterize_sweep: the re-characterization it sweeps is the engine's
own when nothing is changed, and a changed parameter does change it."""

from __future__ import annotations

import dataclasses
import math

import pytest

from acquisition.simulate import LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from engine.models.postprocess_file import PostprocessParams
from offline.datasets import LabeledRecording
from offline.experiments.characterize_sweep import (
    events_with,
    parse_sets,
    record_instances,
    with_base,
)

FIELDS = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_recharacterized_events_equal_the_engines_and_react_to_a_parameter() -> None:
    recording = LabeledRecording.from_simulation(
        simulate_linescan(LinescanParams(duration_s=1.5), seed=3), "sweep")
    model = default_model_path(StreamKind.LINESCAN, "accurate")
    params = PostprocessParams.load(model)
    result, seen = record_instances(recording, model, params)
    kinds = {ev.event_id: ev.kind for ev in result.events}
    assert result.events and len(seen) >= len(result.events)
    again = {ev.event_id: ev for ev in events_with(seen, params.characterize, kinds)}
    for event in result.events:
        for name in FIELDS:
            assert _same(getattr(again[event.event_id], name), getattr(event, name)), name
    wide = dataclasses.replace(params.characterize, profile_sigma_ms=12.0)
    changed = events_with(seen, wide, kinds)
    assert any(not _same(e.fdhm_ms, again[e.event_id].fdhm_ms) for e in changed)


def test_parse_sets_checks_the_names() -> None:
    assert parse_sets(["matched_fraction=0.3,0.6"], ["MODEL_AVERAGING=0"]) == [
        ("matched_fraction", 0.3), ("matched_fraction", 0.6), ("peak_top.MODEL_AVERAGING", 0.0)]
    with pytest.raises(SystemExit, match="not a CharacterizeConfig field"):
        parse_sets(["no_such_field=1"])
    with pytest.raises(SystemExit, match="not a constant of engine.timecourse or engine.peak_top"):
        parse_sets([], ["measure=1"])


def test_a_base_setting_reaches_every_row_and_leaves_the_model_alone() -> None:
    params = PostprocessParams.load(default_model_path(StreamKind.LINESCAN, "accurate"))
    based = with_base(params, ["peak_bag_replicates=8", "matched_fraction=0.5"])
    assert based.characterize.peak_bag_replicates == 8
    assert based.characterize.matched_fraction == 0.5
    assert params.characterize.peak_bag_replicates == 0
    assert with_base(params, []) is params
    with pytest.raises(SystemExit, match="not a CharacterizeConfig field"):
        with_base(params, ["no_such_field=1"])
