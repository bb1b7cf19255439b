"""Cell classification from spark parameters (Yang et al. 2021, Front. Physiol.).

Each spark's five parameters ``[amplitude_dff0, rise_ms, t50_ms, fdhm_ms, fwhm_um]`` go through a
standardized logistic regression (WT vs diseased, e.g. CPVT); the cell's label is the majority
vote of its sparks.

Model directory (written by ``offline``, read here; JSON only, never pickle)::

    config.json  {"kind": "cell_classifier", "schema_version": 1,
                  "features": [...5 names...], "classes": ["wt", "cpvt"],
                  "mean": [...], "scale": [...], "coef": [...], "intercept": float}

``P(classes[1]) = sigmoid(coef · (x − mean) / scale + intercept)``.

Confidence of the vote (:class:`CellVote`) — honest about uncertain sparks and input:

* each spark votes with its probability p (a soft vote, not a 0/1 ballot: a spark the
  regression finds ambiguous, p ≈ 0.5, adds little to either side) and a weight w for how sure
  we are it is a spark at all: w = clip((z − z_min) / z_min, 0.1, 1) from its significance z
  (:mod:`engine.significance`; a spark at twice the reporting threshold counts fully), 0.5 when
  z is unknown;
* a spark whose features lie more than :data:`OUT_OF_RANGE_SD` SDs from the classifier's
  training mean is out of range: it does not vote and is counted (``n_out_of_range``);
* with K = Σ w·p and N = Σ w, the fraction of ``classes[1]`` sparks gets a Beta(1 + K,
  1 + N − K) posterior; the raw confidence is the posterior probability that the majority side
  is right (0.5 with no sparks; e.g. 3 sure sparks with p = 1 → 0.94);
* a *trust* factor in (0, 1] shrinks it towards 0.5: confidence = 0.5 + trust × (raw − 0.5).
  The analyzer lowers trust for input the classifier was not trained on — another recording
  mode (:data:`TRUSTED_KINDS`), calibration outside the model's trained range or given by flags
  the file does not confirm, very low resting SNR — and the reasons are listed (``notes``);
* the label is ``"undecided"`` unless the confidence reaches :data:`MIN_CONFIDENCE` with at
  least :data:`MIN_EFFECTIVE_SPARKS` of weight N.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import betainc

from acquisition.stream_kind import StreamKind
from engine.events import Event
from engine.kind_rules import is_ember

log = logging.getLogger(__name__)

FEATURES = ("amplitude_dff0", "rise_ms", "t50_ms", "fdhm_ms", "fwhm_um")
SCHEMA_VERSION = 1
UNDECIDED = "undecided"
OUT_OF_RANGE_SD = 4.0
MIN_CONFIDENCE = 0.8
MIN_EFFECTIVE_SPARKS = 3.0
MIN_WEIGHT = 0.1
#: kinds of stream the packaged classifier's features were measured on (line-scan sparks)
TRUSTED_KINDS = (StreamKind.LINESCAN,)


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
    n_effective: float = 0.0
    n_out_of_range: int = 0
    trust: float = 1.0
    notes: str = ""

    def to_dict(self) -> dict:
        """Plain dict (for sinks)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "n_sparks": self.n_sparks,
            "votes": dict(self.votes),
            "n_skipped": self.n_skipped,
            "mean_proba": self.mean_proba,
            "n_effective": self.n_effective,
            "n_out_of_range": self.n_out_of_range,
            "trust": self.trust,
            "notes": self.notes,
        }


def majority_confidence(k_positive: float, n: float) -> float:
    """P(majority side is right) under a Beta(1 + k, 1 + n − k) posterior on the fraction
    (``k`` and ``n`` may be weighted, fractional counts)."""
    if n <= 0 or 2 * k_positive == n:
        return 0.5
    p_below_half = float(betainc(1 + k_positive, 1 + n - k_positive, 0.5))
    return 1.0 - p_below_half if 2 * k_positive > n else p_below_half


def spark_weight(significance: float, min_significance: float) -> float:
    """How much a spark counts in the vote, from its significance (module docstring)."""
    if not math.isfinite(significance) or not min_significance > 0:
        return 0.5
    return float(np.clip((significance - min_significance) / min_significance, MIN_WEIGHT, 1.0))


@dataclass
class CellVote:
    """Soft, weighted vote of a cell's sparks; feed events one at a time with :meth:`add`."""

    classifier: CellClassifier
    min_significance: float = math.nan
    votes: dict[str, int] = field(default_factory=dict)
    n_skipped: int = 0
    n_out_of_range: int = 0
    trust: float = 1.0
    notes: tuple[str, ...] = ()
    _proba_sum: float = 0.0
    _weighted_positive: float = 0.0
    _weight: float = 0.0

    def __post_init__(self) -> None:
        self.votes = {name: 0 for name in self.classifier.classes}

    def set_trust(self, trust: float, notes: tuple[str, ...] = ()) -> None:
        """Shrink the confidence towards 0.5 by ``trust`` in (0, 1], for ``notes`` reasons."""
        self.trust = float(np.clip(trust, 0.0, 1.0))
        self.notes = tuple(notes)

    def add(self, event: Event | dict) -> CellSummary:
        """Vote with one event (non-spark kinds and line-scan embers are ignored: the
        classifier was trained on sparks; sparks with NaN or out-of-range features are skipped
        and counted)."""
        row = event.to_dict() if isinstance(event, Event) else event
        if row.get("kind", "spark") != "spark" or is_ember(row):
            return self.summary()
        features = self.classifier.features_of(row)
        if not np.all(np.isfinite(features)):
            self.n_skipped += 1
        elif np.any(np.abs((features - self.classifier.mean) / self.classifier.scale)
                    > OUT_OF_RANGE_SD):
            self.n_out_of_range += 1
        else:
            proba = float(self.classifier.predict_proba(features)[0, 1])
            weight = spark_weight(float(row.get("significance", math.nan)), self.min_significance)
            self._proba_sum += proba
            self._weighted_positive += weight * proba
            self._weight += weight
            self.votes[self.classifier.classes[int(proba >= 0.5)]] += 1
        return self.summary()

    def summary(self) -> CellSummary:
        """The current label, confidence and counts."""
        negative, positive = self.classifier.classes
        n = sum(self.votes.values())
        raw = majority_confidence(self._weighted_positive, self._weight)
        confidence = 0.5 + self.trust * (raw - 0.5)
        label = UNDECIDED
        if confidence >= MIN_CONFIDENCE and self._weight >= MIN_EFFECTIVE_SPARKS:
            label = positive if 2 * self._weighted_positive > self._weight else negative
        return CellSummary(
            label=label,
            confidence=confidence,
            n_sparks=n,
            votes=dict(self.votes),
            n_skipped=self.n_skipped,
            mean_proba=self._proba_sum / n if n else math.nan,
            n_effective=self._weight,
            n_out_of_range=self.n_out_of_range,
            trust=self.trust,
            notes="; ".join(self.notes),
        )


def classifier_trust(stream_kind: StreamKind, quality: dict) -> tuple[float, tuple[str, ...]]:
    """Trust in the cell vote for a recording, from its mode and quality report
    (:mod:`engine.quality`): each concern halves it (calibration given by flags only: × 0.7)."""
    trust, notes = 1.0, []
    if stream_kind not in TRUSTED_KINDS:
        trust *= 0.5
        notes.append("the classifier was trained on line-scan sparks")
    calibration = quality.get("calibration", {})
    if calibration.get("outside"):
        trust *= 0.5
        notes.append("calibration outside the model's trained range")
    if "flag" in calibration.get("source", {}).values():
        trust *= 0.7
        notes.append("calibration given by flags, not recorded in the file")
    snr = quality.get("resting_snr")
    if snr is not None and math.isfinite(snr) and snr < 2.0:
        trust *= 0.5
        notes.append(f"resting SNR {snr:.1f}")
    return trust, tuple(notes)
