"""A puff that peaks before its own region begins is the tail of an earlier event
(engine/tails.py): the rule on characterized events, and that the analyzer applies it."""

from __future__ import annotations

import numpy as np
import pytest

from engine.characterize import CharacterizeConfig, characterize
from engine.instances import Instance
from engine.tails import TAIL_KEY, frames_before_start, is_tail

DT_MS, PIXEL_UM = 6.8, 0.2


def _instance(kind: str, on_plateau: bool, seed: int = 0) -> Instance:
    """A 40-frame 24×24 ΔF/F0 crop whose mask starts at frame 15 (absolute 115).
    ``on_plateau``: a wave's front passed at frame 5 and left a slowly decaying plateau that the
    region sits on (what a wave leaves behind); else a blob rises from frame 15 to a peak at
    frame 22 and decays (an event of its own)."""
    rng = np.random.default_rng(seed)
    t = np.arange(40, dtype=float)[:, None, None]
    if on_plateau:
        course = np.where(t < 5, 0.0, np.exp(-(t - 5) / 200.0)) * np.ones((1, 24, 24))
    else:
        yy, xx = np.mgrid[:24, :24]
        blob = np.exp(-((yy - 12) ** 2 + (xx - 12) ** 2) / (2 * (1.0 / PIXEL_UM) ** 2))[None]
        rise = np.clip((t - 15) / 7, 0, None) * (t <= 22) + np.exp(-(t - 22) / 8.0) * (t > 22)
        course = rise * blob
    dff0 = (course + rng.normal(0, 0.05, (40, 24, 24))).astype(np.float32)
    mask = np.zeros((20, 24, 24), bool)
    mask[:, 8:17, 8:17] = True
    return Instance(kind=kind, score=0.9, mask=mask, origin=(115, 0, 0), dff0=dff0,
                    dff0_origin=(100, 0, 0), axes="TYX")


@pytest.mark.parametrize(("kind", "on_plateau", "expected"), [
    ("puff", True, True), ("puff", False, False), ("spark", True, False),
    ("wave", True, False)])
def test_a_puff_peaking_before_its_start_is_a_tail(kind, on_plateau, expected) -> None:
    inst = _instance(kind, on_plateau)
    fields = characterize(inst, PIXEL_UM, DT_MS, CharacterizeConfig())
    before = frames_before_start(fields, inst, DT_MS)
    if on_plateau:
        assert before >= 5  # the plateau's top, near frame 105, is ~10 frames before 115
    else:
        assert before <= -5  # its own peak, frame 122, is 7 frames after its start
    assert is_tail(fields, inst, DT_MS, 1.0) is expected


def _analyzer_stub():
    """What :class:`StreamAnalyzer`'s accept-check helpers read: calibration, the
    characterization config and the quality report's event counts."""
    from engine.analyzer import StreamAnalyzer
    from engine.quality import EventCounts

    class _Stub:
        info = type("I", (), {"dt_ms": DT_MS, "pixel_um": PIXEL_UM})()
        detector = type("D", (), {"characterize_config": CharacterizeConfig()})()
        quality = type("Q", (), {"events": EventCounts()})()
        _characterize = StreamAnalyzer._characterize
        _characterized = StreamAnalyzer._characterized

    return _Stub()


def test_the_analyzer_drops_tails_and_counts_them(monkeypatch) -> None:
    """Through the analyzer's accept check: with the key a puff on a plateau is not accepted and
    is counted apart from the events under the significance floors; an event of its own is;
    without the key neither is tested."""
    from engine.analyzer import StreamAnalyzer

    stub = _analyzer_stub()
    stub._tail_frames = 1.0
    assert StreamAnalyzer._tail(stub, _instance("puff", True)) is True
    own = _instance("puff", False)
    assert StreamAnalyzer._tail(stub, own) is False
    assert own.characterized is not None  # kept for the event's fields
    assert stub.quality.events.rejected_tail == 1
    stub._tail_frames = None
    assert StreamAnalyzer._tail(stub, _instance("puff", True)) is False


def test_the_movie_model_sets_the_tail_rule() -> None:
    import json
    from pathlib import Path

    import engine.models

    path = Path(engine.models.__file__).parent / "default" / "movie" / "thresholds.json"
    assert json.loads(path.read_text())[TAIL_KEY] == 1.0


def test_the_overview_title_names_the_tails() -> None:
    from pathlib import Path

    from engine.analyze_file import _overview_title

    def title(tails: int) -> str:
        events = {"min_significance": 7.0, "local_min_significance": None,
                  "rejected_not_significant": 5, "rejected_tail_of_earlier_event": tails}
        return _overview_title(Path("m.tif"), {
            "quality": {"events": events, "resting_snr": 4.0, "saturated_fraction": 0.0},
            "n_events": 3, "label": "undecided", "confidence": 0.5})

    assert "5 candidates rejected)" in title(0)
    assert "5 candidates rejected, 1 tail of an earlier event)" in title(1)
    assert "2 tails of earlier events)" in title(2)


def _decaying(seed: int = 0) -> Instance:
    """A candidate on the decay of what came before it: the crop's ΔF/F0 jumps at frame 5 and
    decays (τ 60 frames), the mask covers frames 15-34; no transient of its own."""
    t = np.arange(40, dtype=float)[:, None, None]
    course = np.where(t < 5, 0.0, np.exp(-(t - 5) / 60.0)) * np.ones((1, 24, 24))
    noise = np.random.default_rng(seed).normal(0, 0.01, (40, 24, 24))
    mask = np.zeros((20, 24, 24), bool)
    mask[:, 8:17, 8:17] = True
    return Instance(kind="spark", score=0.9, mask=mask, origin=(115, 0, 0),
                    dff0=(course + noise).astype(np.float32), dff0_origin=(100, 0, 0),
                    axes="TYX")


def test_the_analyzer_drops_candidates_without_a_rise_and_counts_them() -> None:
    """A candidate whose time course only decays from the level before it has no peak to
    characterize: not accepted, and counted apart; an event of its own is accepted and keeps
    its characterization."""
    from engine.analyzer import StreamAnalyzer

    stub = _analyzer_stub()
    assert StreamAnalyzer._rises(stub, _decaying()) is False
    own = _instance("spark", False)
    assert StreamAnalyzer._rises(stub, own) is True
    assert np.isfinite(own.characterized["amplitude_dff0"])
    assert stub.quality.events.rejected_no_rise == 1


def test_the_overview_title_names_candidates_without_a_rise() -> None:
    from pathlib import Path

    from engine.analyze_file import _overview_title

    events = {"min_significance": 7.0, "local_min_significance": None,
              "rejected_not_significant": 5, "rejected_tail_of_earlier_event": 0,
              "rejected_no_rise": 2}
    title = _overview_title(Path("m.tif"), {
        "quality": {"events": events, "resting_snr": 4.0, "saturated_fraction": 0.0},
        "n_events": 3, "label": "undecided", "confidence": 0.5})
    assert "5 candidates rejected, 2 without a rise)" in title
