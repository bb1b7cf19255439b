"""The tuning that chooses a post-processing value writes it to ``postprocess.json`` with its
command (offline/experiments/spark_splitting.py), and ``castream tune-hybrid`` leaves it alone
(offline/hybrid_tuning.py). Fake searches: nothing is analysed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine.hybrid import HybridParams
from engine.models.postprocess_file import POSTPROCESS_FILE, PostprocessParams
from offline.experiments import spark_splitting
from offline.hybrid_tuning import best_params, write_best

#: the fake spark F1 of each split_dip_sd (None: Dotti's distances)
FAKE_F1 = {None: 0.90, 3.0: 0.93, 5.0: 0.95}


def _fake_result(f1: float) -> SimpleNamespace:
    score = {"f1": f1, "recall": f1, "precision": f1}
    return SimpleNamespace(one_to_one={"spark": score, "puff": score},
                           scores={"spark": score, "puff": score}, subtype_recall={},
                           characterization={})


@pytest.fixture
def fake_search(monkeypatch):
    """spark_splitting with fake data and a fake evaluation scoring :data:`FAKE_F1`; returns
    the postprocess.json each evaluation ran with (detector, split_dip_sd)."""
    seen = []

    def evaluate(recordings, model, detector, postprocess, progress):
        split = postprocess.tracker_for("hybrid").split_dip_sd
        seen.append((detector, split, postprocess.tracker_for("network").split_dip_sd))
        return _fake_result(FAKE_F1[split])

    monkeypatch.setattr(spark_splitting, "evaluate", evaluate)
    monkeypatch.setattr(spark_splitting, "validation_sets",
                        lambda kind, n_dev, n_sim: {"development": [], "simulator": []})
    return seen


def _model(tmp_path):
    HybridParams().save(tmp_path)  # `auto` runs the hybrid there
    PostprocessParams(notes=("kept",)).save(tmp_path)
    return tmp_path


def test_spark_splitting_writes_the_best_value_with_its_command(tmp_path, fake_search):
    model = _model(tmp_path)
    assert spark_splitting.main(["--model", str(model), "--n", "2", "--grid", "3", "5"]) == 0
    params = PostprocessParams.load(model)
    assert params.tracker_for("hybrid").split_dip_sd == 5.0
    assert params.tracker_for("network").split_dip_sd is None
    assert params.notes == ("kept",)
    text = params.provenance["tracker_overrides.hybrid.split_dip_sd"]
    assert text.startswith("python -m offline.experiments.spark_splitting --model")
    assert "--grid 3 5" in text and "0.950" in text and "0.900" in text
    assert {split for _, split, _ in fake_search} == {None, 3.0, 5.0}
    assert {net for _, _, net in fake_search} == {None}  # only the hybrid's value was varied


def test_spark_splitting_replaces_its_earlier_choice_and_dry_run_writes_nothing(
        tmp_path, fake_search, monkeypatch):
    model = _model(tmp_path)
    spark_splitting.main(["--model", str(model), "--grid", "3", "5"])
    monkeypatch.setitem(FAKE_F1, 3.0, 0.99)
    before = (model / POSTPROCESS_FILE).read_text()
    spark_splitting.main(["--model", str(model), "--grid", "3", "5", "--dry-run"])
    assert (model / POSTPROCESS_FILE).read_text() == before
    spark_splitting.main(["--model", str(model), "--grid", "3"])
    params = PostprocessParams.load(model)
    assert params.tracker_for("hybrid").split_dip_sd == 3.0
    assert list(params.provenance) == ["tracker_overrides.hybrid.split_dip_sd"]
    assert "0.990" in params.provenance["tracker_overrides.hybrid.split_dip_sd"]


def test_tune_hybrid_writes_hybrid_json_and_keeps_postprocess_json(tmp_path):
    model = tmp_path
    tuned = PostprocessParams().with_override("hybrid", "split_dip_sd", 5.0, "python -m x")
    tuned.save(model)
    before = (model / POSTPROCESS_FILE).read_text()
    search = {"best": {"classical_weight": 1.0, "classes_from_classical": ["wave"],
                       "min_significance": 6.5, "classical": {"k_detect": 6.0},
                       "provenance": "", "notes": []},
              "best_objective": 0.95, "n_recordings": {"sim": 2, "dev": 2}, "n_empty": 1,
              "trials": []}
    params = best_params(search, "castream tune-hybrid m --n 2", model)
    write_best(model, params, search)
    assert (model / POSTPROCESS_FILE).read_text() == before
    assert PostprocessParams.load(model) == tuned  # the hybrid still splits at 5 SDs
    hybrid = HybridParams.load(model)
    assert hybrid.min_significance == 6.5 and hybrid.classical == {"k_detect": 6.0}
    assert hybrid.provenance.startswith("castream tune-hybrid m --n 2: validation objective 0.950")
    assert "split_dip_sd 5.0" in hybrid.provenance
    assert json.loads((model / "hybrid_search.json").read_text())["best_objective"] == 0.95
