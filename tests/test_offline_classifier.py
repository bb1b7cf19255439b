"""Cell classifier: logistic regression + cross-validation on synthetic separable data."""

import json

import numpy as np

from offline import classifier


def _data(n=200, shift=3.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 5)) * [0.2, 2.0, 5.0, 5.0, 0.3] + [0.5, 10, 25, 30, 2]
    x[:, 2] += y * shift * 5.0
    return x, y


def test_fit_separable_data():
    x, y = _data(shift=5.0)  # classes 5 SD apart: Bayes accuracy 99.4 % (shift 3: only 93.3 %)
    model = classifier.fit_logistic(x, y)
    assert classifier.accuracy(model, x, y) > 0.95
    assert np.argmax(np.abs(model.coef)) == 2


def test_cross_validations():
    x, y = _data(120)
    cv = classifier.all_cross_validations(x, y, seed=1, k=5, repeats=5)
    for name in ("kfold", "leave_one_out", "random_division"):
        assert cv[name]["mean_accuracy"] > 0.9, name
    assert cv["kfold"]["n_splits"] == 5
    assert cv["leave_one_out"]["n_splits"] == 120


def test_cell_vote_and_save(tmp_path):
    x, y = _data(300, shift=2.0)
    model = classifier.fit_logistic(x, y)
    cells = np.where(y == 1, 100, 0) + np.arange(300) % 10
    vote = classifier.cell_vote_accuracy(model, x, y, cells)
    assert vote["n_cells"] == 20 and vote["cell_accuracy"] >= 0.95
    assert vote["spark_accuracy"] < 1.0
    classifier.save_classifier(model, tmp_path, {"cv": 1})
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["kind"] == "cell_classifier" and cfg["classes"] == ["wt", "cpvt"]
    assert len(cfg["coef"]) == 5 and cfg["schema_version"] == 1
