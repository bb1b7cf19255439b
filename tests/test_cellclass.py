"""Cell classifier (Yang et al.): JSON model directory, probabilities, running majority vote."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from acquisition.stream_kind import StreamKind
from engine.cellclass import (
    FEATURES,
    MIN_CONFIDENCE,
    CellClassifier,
    CellVote,
    classifier_trust,
    majority_confidence,
)
from engine.events import Event


def classifier():
    # cpvt if amplitude is large: only the first coefficient matters
    return CellClassifier(mean=[0.6, 8, 25, 30, 2], scale=[0.2, 2, 5, 8, 0.3],
                          coef=[3.0, 0, 0, 0, 0], intercept=0.0)


def spark(amplitude, kind="spark", fwhm=2.0, significance=20.0):
    return Event(1, kind, 0, 1, 2, 1.0, math.nan, amplitude, fwhm, 30.0, 8.0, 25.0,
                 significance=significance)


def test_save_load_roundtrip(tmp_path):
    model = classifier()
    path = model.save(tmp_path / "cellclf")
    config = json.loads(path.read_text())
    assert config["kind"] == "cell_classifier" and config["features"] == list(FEATURES)
    loaded = CellClassifier.load(tmp_path / "cellclf")
    x = np.array([[0.9, 8, 25, 30, 2], [0.3, 8, 25, 30, 2]])
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))
    proba = model.predict_proba(x)
    assert proba[0, 1] > 0.9 and proba[1, 1] < 0.1
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_load_rejects_wrong_kind(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "unet", "schema_version": 1}))
    with pytest.raises(ValueError, match="cell_classifier"):
        CellClassifier.load(tmp_path)


def test_vote_firms_up_and_skips_nan():
    vote = CellVote(classifier(), min_significance=5.0)
    assert vote.summary().label == "undecided" and vote.summary().confidence == 0.5
    confidences = [vote.add(spark(1.0)).confidence for _ in range(5)]
    assert all(b > a for a, b in zip(confidences, confidences[1:], strict=False))
    summary = vote.add(spark(0.2))
    assert summary.label == "cpvt" and summary.votes == {"wt": 1, "cpvt": 5}
    summary = vote.add(spark(1.0, fwhm=math.nan))
    assert summary.n_skipped == 1 and summary.n_sparks == 6
    assert vote.add(spark(1.0, kind="wave")).n_sparks == 6  # waves do not vote
    ember = dataclasses.replace(spark(1.0), flags="t50_ms_unmeasured;ember")
    assert vote.add(ember).n_sparks == 6  # nor line-scan embers (the classifier saw sparks)
    summary = vote.add(spark(1.0, fwhm=50.0))  # 160 SDs from the training mean
    assert summary.n_out_of_range == 1 and summary.n_sparks == 6
    assert majority_confidence(3, 3) == pytest.approx(1 - 0.5**4)
    assert majority_confidence(0, 3) == pytest.approx(1 - 0.5**4)


def test_vote_for_wt_cell():
    vote = CellVote(classifier(), min_significance=5.0)
    for amplitude in [0.2, 0.3, 0.25, 0.9, 0.3]:
        summary = vote.add(spark(amplitude).to_dict())
    assert summary.label == "wt" and summary.confidence > 0.8
    assert summary.to_dict()["votes"] == {"wt": 4, "cpvt": 1}


def test_ambiguous_sparks_never_give_a_confident_class():
    """Sparks the regression cannot tell apart (p = 0.5 ± 0.05) stay undecided however many."""
    vote = CellVote(classifier(), min_significance=5.0)
    for amplitude in np.linspace(0.59, 0.61, 200):
        summary = vote.add(spark(float(amplitude)))
    assert summary.n_sparks == 200 and summary.label == "undecided"
    assert summary.confidence < MIN_CONFIDENCE


def test_barely_significant_sparks_count_less():
    sure, barely = (CellVote(classifier(), min_significance=5.0) for _ in range(2))
    for _ in range(4):
        sure.add(spark(1.0, significance=10.0))
        barely.add(spark(1.0, significance=5.2))
    assert sure.summary().label == "cpvt"
    assert barely.summary().label == "undecided"
    assert barely.summary().confidence < sure.summary().confidence


def test_trust_shrinks_confidence_for_unsupported_input():
    vote = CellVote(classifier(), min_significance=5.0)
    for _ in range(30):
        vote.add(spark(1.0))
    assert vote.summary().confidence > 0.99
    trust, notes = classifier_trust(StreamKind.MOVIE, {
        "calibration": {"outside": ["dt_ms"], "source": {"pixel_um": "flag", "dt_ms": "flag"}},
        "resting_snr": 1.2})
    assert trust < 0.1 and len(notes) == 4
    vote.set_trust(trust, notes)
    summary = vote.summary()
    assert summary.label == "undecided" and summary.confidence < 0.6
    assert "line-scan" in summary.notes
    assert classifier_trust(StreamKind.LINESCAN, {"calibration": {"outside": [], "source": {}},
                                   "resting_snr": 8.0}) == (1.0, ())
