"""The hybrid detector: the network's and the classical detector's evidence fused pixel by pixel.

Why: the network is the better segmenter on data like its training simulator, and the classical
detector (a noise criterion, no training) degrades less on data unlike it — out-of-focus and
long-lasting sparks, waves in line-scans (README, "In distribution and on data the training never
saw", and docs/RESULTS.md). Fusing both per pixel keeps what each finds; the analyzer's significance check
(:mod:`engine.significance`) then judges every proposal against the local noise, whoever made
it.

Rule, per pixel of every finalized frame (``p`` = 1 − P(background) of each detector):

* **foreground**: on the classical detector's pseudo-probability scale (its tracker thresholds:
  ``foreground`` = extent criterion, ``seed`` = detection criterion), the network's evidence is
  mapped so that its own foreground threshold lands on the classical seed (a network region
  is a detection), below it it stays under the classical extent criterion; the fused value is
  the larger of the two (``classical_weight`` 0 turns the classical detector into a class-only
  advisor);
* **class**: where the classical detector is foreground and its class is in
  ``classes_from_classical`` (e.g. ``wave``: a line-scan wave that the network cuts into
  sparks), the class probabilities are the classical detector's; elsewhere the network's.

Parameters live in the model directory's ``hybrid.json`` (:class:`HybridParams`; tuned on
validation data only, with the command that tuned them in that file's ``provenance``); a model
without it runs as a plain network detector under ``auto``. The post-processing of the fused
probabilities (tracker, characterization) is the model directory's ``postprocess.json`` with its
``hybrid`` tracker overrides (:mod:`engine.models.postprocess_file`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from acquisition.labels import CLASS_IDS

from .detectors import ClassicalStreamDetector, NetworkDetector
from .honesty import PRECISE_KEY
from .kind_rules import KEYS as KIND_RULE_KEYS
from .models.postprocess_file import LEGACY_HYBRID_KEYS, PostprocessParams
from .significance import (
    LOCAL_MIN_SIGNIFICANCE_KEY,
    RESTING_BASELINE_KEY,
    WAVE_MIN_SIGNIFICANCE_KEY,
)
from .tails import TAIL_KEY
from .windows import FinalBlock

log = logging.getLogger(__name__)

HYBRID_FILE = "hybrid.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class HybridParams:
    """Fusion parameters (model directory ``hybrid.json``); see the module docstring."""

    classical_weight: float = 1.0  # 0: the classical detector only advises on classes
    classes_from_classical: tuple[str, ...] = ("wave",)
    min_significance: float | None = None  # None: the network's thresholds.json value
    classical: dict = field(default_factory=dict)  # ClassicalParams overrides
    #: where the network sees an event whose share of ``spark`` is at least this, its classes
    #: are kept inside a classical *wave* (a spark on a wave stays a spark, and the tracker can
    #: split it off); None: the classical class throughout
    network_spark_share: float | None = None
    #: a pixel the fusion would call *wave* stays one only where the classical detector sees a
    #: wave too (its wave rule: a stretch as wide as a wave front); elsewhere it takes the
    #: classical detector's classes where that sees an event, and is background where not
    waves_need_classical: bool = False
    #: an event named *wave* is reported only at or above this significance (a wave is large
    #: and bright, so a real one stands far above the noise); None: ``min_significance``
    wave_min_significance: float | None = None
    #: every event must also stand this far above its own pixels before it started
    #: (:func:`engine.significance.local_significance`); None: no such test
    local_min_significance: float | None = None
    provenance: str = ""
    #: how each later addition was chosen (the tune-hybrid ``provenance`` stays as it was)
    notes: tuple[str, ...] = ()

    @classmethod
    def load(cls, model_path: str | Path | None) -> HybridParams | None:
        """``hybrid.json`` of a model directory, or None when it has none (keys that moved to
        ``postprocess.json`` are read there, :mod:`engine.models.postprocess_file`)."""
        if model_path is None:
            return None
        path = Path(model_path) / HYBRID_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"{path}: schema_version {version} is not supported "
                             f"(this castream reads {SCHEMA_VERSION})")
        for key in LEGACY_HYBRID_KEYS:
            data.pop(key, None)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        for key in NUMBER_KEYS:
            value = data.get(key)
            if isinstance(value, bool) or not (value is None or isinstance(value, int | float)):
                raise ValueError(f"{path}: {key} must be a number or null, got {value!r}")
        if "notes" in data:
            data["notes"] = tuple(data["notes"])
        if "classes_from_classical" in data:
            data["classes_from_classical"] = tuple(data["classes_from_classical"])
            bad = set(data["classes_from_classical"]) - {"spark", "wave", "puff"}
            if bad:
                raise ValueError(f"{path}: classes_from_classical has unknown kinds {sorted(bad)}")
        return cls(**data)

    def save(self, model_path: str | Path) -> Path:
        path = Path(model_path) / HYBRID_FILE
        data = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        data["classes_from_classical"] = list(self.classes_from_classical)
        data["notes"] = list(self.notes)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path


#: ``hybrid.json`` keys that hold a number or null
NUMBER_KEYS = ("min_significance", "network_spark_share", "wave_min_significance",
               "local_min_significance")


class HybridDetector:
    """A :class:`NetworkDetector` and a :class:`ClassicalStreamDetector` over one stream, their
    final blocks fused (module docstring). Same interface as both. ``postprocess``: instead of
    the network's (its model directory's ``postprocess.json``)."""

    def __init__(self, network: NetworkDetector, classical: ClassicalStreamDetector,
                 params: HybridParams, postprocess: PostprocessParams | None = None) -> None:
        self.network, self.classical, self.params = network, classical, params
        cls_thr = classical.thresholds
        self._cls_fg, self._cls_seed = float(cls_thr["foreground"]), float(cls_thr["seed"])
        self._net_fg = float(network.thresholds.get("foreground", 0.5))
        min_sig = (params.min_significance if params.min_significance is not None
                   else network.thresholds.get("min_significance"))
        self.thresholds = {"foreground": self._cls_fg, "seed": self._cls_seed}
        if min_sig is not None:
            self.thresholds["min_significance"] = float(min_sig)
        if params.wave_min_significance is not None:
            self.thresholds[WAVE_MIN_SIGNIFICANCE_KEY] = float(params.wave_min_significance)
        if params.local_min_significance is not None:
            self.thresholds[LOCAL_MIN_SIGNIFICANCE_KEY] = float(params.local_min_significance)
        # the kind rules are about events, not about one detector's probabilities
        self.thresholds.update({key: network.thresholds[key]
                                for key in (*KIND_RULE_KEYS, PRECISE_KEY, TAIL_KEY,
                                            RESTING_BASELINE_KEY)
                                if network.thresholds.get(key) is not None})
        postprocess = network.postprocess if postprocess is None else postprocess
        self.tracker_config = postprocess.tracker_for("hybrid")
        self.characterize_config = postprocess.characterize
        self.preprocess = network.preprocess
        self.trained_range = network.trained_range
        self.network_calibration = network.network_calibration
        self.dense_ops = network.dense_ops
        self.name = f"hybrid:{network.name}+classical"
        self._from_classical = [CLASS_IDS[k] for k in params.classes_from_classical]
        self._pending: dict[str, list[FinalBlock]] = {"network": [], "classical": []}
        self._next = 0  # next frame to emit

    # -- the Detector interface -----------------------------------------------------------------
    @property
    def lookahead_frames(self) -> int:
        return max(self.network.lookahead_frames, self.classical.lookahead_frames)

    @property
    def has_ready(self) -> bool:
        return self.network.has_ready

    @property
    def n_submitted(self) -> int:
        """A fused frame is final once both halves' are (the classical half computes at once)."""
        return min(self.network.n_submitted, self.classical.n_submitted)

    @property
    def n_delivered(self) -> int:
        return self._next

    def push(self, first: int, dff0: np.ndarray) -> list[FinalBlock]:
        self._pending["classical"] += self.classical.push(first, dff0)
        self._pending["network"] += self.network.push(first, dff0)
        return self._emit()

    def take_ready(self) -> list[FinalBlock]:
        self._pending["network"] += self.network.take_ready()
        return self._emit()

    def flush(self) -> list[FinalBlock]:
        self._pending["classical"] += self.classical.flush()
        self._pending["network"] += self.network.flush()
        return self._emit()

    # -- fusion ---------------------------------------------------------------------------------
    def _emit(self) -> list[FinalBlock]:
        stop = min((blocks[-1].stop if blocks else self._next)
                   for blocks in self._pending.values())
        if stop <= self._next:
            return []
        net = self._take("network", stop)
        cls = self._take("classical", stop)
        block = FinalBlock(self._next, self.fuse(net, cls))
        self._next = stop
        return [block]

    def _take(self, name: str, stop: int) -> np.ndarray:
        """Probabilities of frames ``self._next .. stop`` from the pending blocks of ``name``."""
        parts, keep = [], []
        for block in self._pending[name]:
            lo, hi = max(block.first, self._next), min(block.stop, stop)
            if lo < hi:
                parts.append(block.probs[lo - block.first:hi - block.first])
            if block.stop > stop:
                keep.append(FinalBlock(stop, block.probs[stop - block.first:])
                            if block.first < stop else block)
        self._pending[name] = keep
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def fuse(self, net: np.ndarray, cls: np.ndarray) -> np.ndarray:
        """Fused ``(n, 4, *spatial)`` probabilities of aligned network and classical blocks."""
        net = np.asarray(net, np.float32)
        cls = np.asarray(cls, np.float32)
        p_net, p_cls = 1.0 - net[:, 0], 1.0 - cls[:, 0]
        t, s, f = self._net_fg, self._cls_seed, self._cls_fg
        # the network's foreground threshold t lands on the classical seed s; below t, under f
        mapped = np.where(p_net >= t, s + (1.0 - s) * (p_net - t) / max(1.0 - t, 1e-6),
                          0.999 * f * p_net / max(t, 1e-6))
        fg = np.maximum(mapped, self.params.classical_weight * p_cls)
        classes = net[:, 1:] / np.maximum(p_net, 1e-6)[:, None]
        cls_classes = cls[:, 1:] / np.maximum(p_cls, 1e-6)[:, None]
        cls_kind = np.argmax(cls[:, 1:], axis=1) + 1
        # the classical class where it is trusted with that kind, and where only the classical
        # detector sees an event (the network's class split of a background pixel means nothing)
        take = (p_cls >= f) & (np.isin(cls_kind, self._from_classical) | (mapped < f))
        if self.params.network_spark_share is not None:
            take &= ~((cls_kind == CLASS_IDS["wave"]) & (mapped >= f)
                      & (classes[:, 0] >= self.params.network_spark_share))
        classes = np.where(take[:, None], cls_classes, classes)
        if self.params.waves_need_classical:
            wave = CLASS_IDS["wave"] - 1
            lone = ((np.argmax(classes, axis=1) == wave)
                    & ~((p_cls >= f) & (cls_kind == CLASS_IDS["wave"])))
            seen = lone & (p_cls >= f)
            classes = np.where(seen[:, None], cls_classes, classes)
            fg = np.where(lone & ~seen, 0.0, fg)
        classes /= np.maximum(classes.sum(axis=1, keepdims=True), 1e-6)
        out = np.empty_like(net)
        out[:, 0] = 1.0 - fg
        out[:, 1:] = classes * fg[:, None]
        return out
