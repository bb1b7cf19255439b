"""Cell classification from spark parameters (Yang et al. 2021, Front. Physiol.).

Each spark's five parameters ``[amplitude_dff0, rise_ms, t50_ms, fdhm_ms, fwhm_um]`` go through a
standardized logistic regression (WT vs diseased, e.g. CPVT); the cell's label is the majority
vote of its sparks.

Model directory (written by ``offline``, read here; JSON only, never pickle)::

    config.json  {"kind": "cell_classifier", "schema_version": 1,
                  "features": [...5 names...], "classes": ["wt", "cpvt"],
                  "mean": [...], "scale": [...], "coef": [...], "intercept": float}

``P(classes[1]) = sigmoid(coef · (x − mean) / scale + intercept)``.

Confidence of the vote (:class:`CellVote`): with k of n valid sparks voting ``classes[1]``, the
fraction p of such sparks in the cell gets a Beta(1 + k, 1 + n − k) posterior (uniform prior);
the confidence is the posterior probability that the majority side is right, P(p > ½) for a
``classes[1]`` majority, P(p < ½) otherwise. It is 0.5 with no sparks and firms up as sparks
accumulate (e.g. 3 of 3 → 0.94, 9 of 10 → 0.99). A tie is labelled ``"undecided"``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import betainc

from engine.events import Event

log = logging.getLogger(__name__)

FEATURES = ("amplitude_dff0", "rise_ms", "t50_ms", "fdhm_ms", "fwhm_um")
SCHEMA_VERSION = 1
UNDECIDED = "undecided"


@dataclass
class CellClassifier:
    """Standardized logistic regression on spark features (binary)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    features: tuple[str, ...] = FEATURES
    classes: tuple[str, str] = ("wt", "cpvt")

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.scale = np.asarray(self.scale, dtype=np.float64)
        self.coef = np.asarray(self.coef, dtype=np.float64)
        n = len(self.features)
        if not (self.mean.shape == self.scale.shape == self.coef.shape == (n,)):
            raise ValueError(f"mean, scale and coef must each have {n} values")
        if np.any(self.scale <= 0):
            raise ValueError("scale must be positive")
        if len(self.classes) != 2:
            raise ValueError(f"a binary classifier needs 2 classes, got {self.classes}")

    @classmethod
    def load(cls, directory: str | Path) -> CellClassifier:
        """Read ``directory/config.json``; raises ValueError on a wrong kind or schema."""
        path = Path(directory) / "config.json"
        config = json.loads(path.read_text())
        if config.get("kind") != "cell_classifier":
            raise ValueError(f"{path}: kind must be 'cell_classifier', got {config.get('kind')!r}")
        if config.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{path}: unsupported schema_version {config.get('schema_version')!r}")
        return cls(
            mean=config["mean"],
            scale=config["scale"],
            coef=config["coef"],
            intercept=float(config["intercept"]),
            features=tuple(config["features"]),
            classes=tuple(config["classes"]),
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/config.json`` (creating the directory); returns its path."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "kind": "cell_classifier",
            "schema_version": SCHEMA_VERSION,
            "features": list(self.features),
            "classes": list(self.classes),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
        }
        (path / "config.json").write_text(json.dumps(config, indent=2))
        return path / "config.json"

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, 2)`` for features ``(n, 5)`` (or one row ``(5,)``).

        Rows with a NaN feature give NaN probabilities.
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        logits = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        positive = 1.0 / (1.0 + np.exp(-logits))
        return np.stack([1.0 - positive, positive], axis=1)

    def features_of(self, event: Event | dict) -> np.ndarray:
        """The feature vector of one event (NaN for missing values)."""
        row = event.to_dict() if isinstance(event, Event) else event
        return np.array([float(row.get(name, math.nan)) for name in self.features])


@dataclass
class CellSummary:
    """Running classification of one cell."""

    label: str
    confidence: float
    n_sparks: int
    votes: dict[str, int]
    n_skipped: int = 0
    mean_proba: float = math.nan

    def to_dict(self) -> dict:
        """Plain dict (for sinks)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "n_sparks": self.n_sparks,
            "votes": dict(self.votes),
            "n_skipped": self.n_skipped,
            "mean_proba": self.mean_proba,
        }


def majority_confidence(k_positive: int, n: int) -> float:
    """P(majority side is right) under a Beta(1 + k, 1 + n − k) posterior on the fraction."""
    if n == 0 or 2 * k_positive == n:
        return 0.5
    p_below_half = float(betainc(1 + k_positive, 1 + n - k_positive, 0.5))
    return 1.0 - p_below_half if 2 * k_positive > n else p_below_half


@dataclass
class CellVote:
    """Majority vote of a cell's sparks; feed events one at a time with :meth:`add`."""

    classifier: CellClassifier
    votes: dict[str, int] = field(default_factory=dict)
    n_skipped: int = 0
    _proba_sum: float = 0.0

    def __post_init__(self) -> None:
        self.votes = {name: 0 for name in self.classifier.classes}

    def add(self, event: Event | dict) -> CellSummary:
        """Vote with one event (non-spark kinds are ignored, NaN features skipped and counted)."""
        row = event.to_dict() if isinstance(event, Event) else event
        if row.get("kind", "spark") == "spark":
            features = self.classifier.features_of(row)
            if np.all(np.isfinite(features)):
                proba = float(self.classifier.predict_proba(features)[0, 1])
                self._proba_sum += proba
                self.votes[self.classifier.classes[int(proba >= 0.5)]] += 1
            else:
                self.n_skipped += 1
        return self.summary()

    def summary(self) -> CellSummary:
        """The current label, confidence and counts."""
        negative, positive = self.classifier.classes
        k, n = self.votes[positive], self.votes[negative] + self.votes[positive]
        if n == 0 or 2 * k == n:
            label = UNDECIDED
        else:
            label = positive if 2 * k > n else negative
        return CellSummary(
            label=label,
            confidence=majority_confidence(k, n),
            n_sparks=n,
            votes=dict(self.votes),
            n_skipped=self.n_skipped,
            mean_proba=self._proba_sum / n if n else math.nan,
        )
