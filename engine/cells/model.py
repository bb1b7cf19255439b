"""The cells model directory: ROI curator + structure heads (the engine reads only this).

Layout (``engine/models/default/cells``)::

    config.json          schema_version, kind "cells", feature names per model, their
                         normalization (mean, scale, fill for NaN), curator architecture and crop
                         geometry, structure-head width, class names, segmentation keyword
                         arguments, calibration it was trained for (pixel_um + trained_range)
    weights.safetensors  "curator.*", "structure.*" and "patterns.*" state dicts (never
                         pickle)
    thresholds.json      {"is_cell": p}: curation threshold tuned on validation fields
    metrics.json         how it scored, on what, with the command
    curator.onnx         optional, with structure.onnx and (a model with a pattern net)
    structure.onnx       pattern.onnx: the networks as ONNX graphs
    pattern.onnx         (:mod:`engine.cells.onnx_runtime`); when all are there, match the
                         weights and onnxruntime imports, the model runs them with
                         onnxruntime, else with torch
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..models.model_dir import DEFAULT_ROOT, ModelDirError
from .features import feature_matrix
from .schema import CELL_SOURCES, HEADS, RATINGS

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_CELLS_MODEL = DEFAULT_ROOT / "cells"


@dataclass
class CellsModelConfig:
    """Content of ``config.json``."""

    curation_features: list[str]
    structure_features: list[str]
    feature_mean: dict[str, float]
    feature_scale: dict[str, float]
    feature_fill: dict[str, float]
    curator: dict[str, Any] = field(default_factory=lambda: {
        "channels": [8, 16, 32], "crop_px": 64, "crop_scale": 1.25, "min_side_um": 12.0})
    #: hidden width, ensemble members (absent = one head) and the optional score_map
    #: (:func:`rater_median_map` parameters chosen on validation fields); ``kind`` says
    #: which network scores: "mlp" (absent in older directories: MLP heads on the ROI
    #: features) or "crop_cnn" (:class:`~engine.cells.networks.CropScorer` on the features
    #: and fixed-µm patches of the cell, whose geometry is in ``patches``, and ``channels``)
    structure: dict[str, Any] = field(default_factory=lambda: {"hidden": 64})
    calibration: dict[str, Any] = field(default_factory=lambda: {
        "pixel_um": 0.15, "trained_range": {"pixel_um": [0.1, 0.2]}})
    segmentation: dict[str, Any] = field(default_factory=dict)
    patterns: dict[str, Any] | None = None   # {"width": w}: the PatternNet, None = no net
    classes: dict[str, list] = field(default_factory=lambda: {
        "sarcomerisation": list(RATINGS), "directionality": list(RATINGS),
        "cell_source": list(CELL_SOURCES)})
    name: str = "cells"
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "cells"
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellsModelConfig:
        if data.get("schema_version") != SCHEMA_VERSION or data.get("kind") != "cells":
            raise ModelDirError(f"not a cells model config (kind {data.get('kind')!r}, "
                                f"schema_version {data.get('schema_version')!r}; this castream "
                                f"reads kind 'cells' v{SCHEMA_VERSION})")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelDirError(f"invalid cells config: {exc}") from exc

    def standardized(self, rows: list[dict], names: list[str]) -> np.ndarray:
        matrix = feature_matrix(rows, names, self.feature_fill)
        mean = np.array([self.feature_mean[n] for n in names], np.float32)
        scale = np.array([self.feature_scale[n] for n in names], np.float32)
        return (matrix - mean) / scale


@dataclass
class CellsModel:
    config: CellsModelConfig
    weights: dict[str, np.ndarray]
    thresholds: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _nets: dict = field(default_factory=dict, repr=False)
    _sessions: Any = field(default=None, repr=False)  # None: not chosen yet; False: torch

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CELLS_MODEL) -> CellsModel:
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelDirError(f"cells model directory {path} has no config.json")
        config = CellsModelConfig.from_dict(json.loads((path / "config.json").read_text()))
        thresholds = json.loads((path / "thresholds.json").read_text())
        if not 0 <= float(thresholds.get("is_cell", -1)) <= 1:
            raise ModelDirError(f"{path}/thresholds.json needs is_cell in [0, 1]")
        metrics_path = path / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        return cls(config, load_file(str(path / "weights.safetensors")), thresholds, metrics,
                   path)

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.weights.items()},
                  str(path / "weights.safetensors"), metadata={"format": "castream-cells"})
        for name, content in (("config.json", asdict(self.config)),
                              ("thresholds.json", self.thresholds),
                              ("metrics.json", self.metrics)):
            (path / name).write_text(json.dumps(content, indent=2, default=float) + "\n")
        self.path, self._sessions = path, None
        from .onnx_runtime import GRAPHS, export_cells_onnx

        if any((path / file).is_file() for file in GRAPHS.values()):
            export_cells_onnx(self, path)  # never keep graphs of other weights
        return path

    def net(self, name: str):
        """The ``curator``, ``structure`` or ``patterns`` network with its weights, in eval
        mode (built on first use; ``patterns`` is None when the model has no pattern net)."""
        if name not in self._nets:
            net = build_network(self.config, name)
            if net is not None:
                _load_state(net, self.weights, name + ".")
            self._nets[name] = net
        return self._nets[name]

    def probability_net(self, name: str):
        """:class:`~engine.cells.networks.Probabilities` of the ``curator``, ``structure`` or
        ``patterns`` network: what the torch path runs and the ONNX graphs export."""
        from .networks import Probabilities

        key = name + ".probabilities"
        if key not in self._nets:
            self._nets[key] = Probabilities(self.net(name), name).eval()
        return self._nets[key]

    @property
    def runtime(self) -> str:
        """What runs the networks (curator, structure, pattern net), "onnxruntime" or "torch"
        (chosen at the first use and logged once, with why)."""
        if self._sessions is None:
            from .onnx_runtime import open_sessions

            sessions, why = open_sessions(self)
            self._sessions = sessions or False
            log.info("cells networks run on %s (%s)", self.runtime, why)
        return "onnxruntime" if self._sessions else "torch"

    def _run(self, name: str, *inputs: np.ndarray) -> list[np.ndarray]:
        """Outputs of :meth:`probability_net` ``name`` on float32 ``inputs``."""
        inputs = tuple(np.ascontiguousarray(a, np.float32) for a in inputs)
        if self.runtime == "onnxruntime":
            return self._sessions.run(name, *inputs)
        import torch

        with torch.inference_mode():
            return [t.numpy() for t in self.probability_net(name)(*map(torch.from_numpy, inputs))]

    def curate(self, crops: np.ndarray, rows: list[dict]) -> np.ndarray:
        """Probability that each ROI is a true cell."""
        if not rows:
            return np.zeros(0)
        extra = self.config.standardized(rows, self.config.curation_features)
        return self._run("curator", crops, extra)[0].astype(np.float64)

    def pattern_probabilities(self, image: np.ndarray) -> np.ndarray | None:
        """The pattern net's class probabilities ``(classes, ⌈Y/2⌉, ⌈X/2⌉)`` of a normalized
        ``(Y, X)`` image (None: the model has no pattern net)."""
        if self.config.patterns is None:
            return None
        return self._run("patterns", image[None, None])[0][0]

    def pattern_classes(self, image: np.ndarray) -> np.ndarray | None:
        """Pattern class index per output pixel (uint8, ``⌈Y/2⌉ × ⌈X/2⌉``): the argmax of
        :meth:`pattern_probabilities` (None: the model has no pattern net)."""
        proba = self.pattern_probabilities(image)
        return None if proba is None else proba.argmax(0).astype(np.uint8)

    @property
    def structure_kind(self) -> str:
        """The structure network's kind: "mlp" (features only) or "crop_cnn" (features and
        the cell's patches)."""
        return str(self.config.structure.get("kind", "mlp"))

    def score(self, rows: list[dict], patches: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Score (1–5), the heads' raw organisation estimate and class probabilities per head
        for each ROI (the score is the estimate mapped by the config's ``score_map``).

        ``patches`` ``(n, K, C, P, P)`` (:func:`~engine.cells.patches.cell_patches` with the
        config's ``structure["patches"]``, its ``extra`` channels appended by
        :func:`~engine.cells.patches.with_extra_channels`) are needed by a "crop_cnn" model
        only.
        """
        features = self.config.standardized(rows, self.config.structure_features)
        if self.structure_kind == "crop_cnn":
            if patches is None or len(patches) != len(rows):
                raise ValueError("a crop-CNN cells model needs the patches of every ROI")
            out = self._run("structure", patches, features)
        else:
            out = self._run("structure", features)
        estimate = out[0].astype(np.float64)
        mapping = self.config.structure.get("score_map")
        result = {"organisation_estimate": estimate,
                  "structure_score": rater_median_map(estimate, mapping["rater_sd"],
                                                      mapping["keep"])
                  if mapping else estimate}
        result.update(zip(HEADS, out[1:], strict=True))
        return result


def build_network(config: CellsModelConfig, name: str):
    """An untrained network of ``config``: ``curator``, ``structure`` or ``patterns`` (None
    when the config has no pattern net)."""
    from .networks import CropScorer, CuratorNet, HeadsEnsemble, PatternNet, StructureHeads
    from .patterns import PATTERN_CLASSES

    if name == "curator":
        return CuratorNet(len(config.curation_features), tuple(config.curator["channels"])).eval()
    if name == "structure":
        sizes = [len(config.classes[k]) for k in ("sarcomerisation", "directionality",
                                                  "cell_source")]
        kind = config.structure.get("kind", "mlp")
        if kind not in ("mlp", "crop_cnn"):
            raise ModelDirError(f"unknown structure kind {kind!r} (this castream reads "
                                f"'mlp' and 'crop_cnn')")

        def member():
            if kind == "crop_cnn":
                extra = config.structure["patches"].get("extra", [])
                return CropScorer(len(config.structure_features),
                                  tuple(config.structure["channels"]),
                                  int(config.structure["hidden"]), *sizes,
                                  in_channels=2 + len(extra))
            return StructureHeads(len(config.structure_features),
                                  int(config.structure["hidden"]), *sizes)

        members = [member() for _ in range(int(config.structure.get("members", 0)) or 1)]
        return (HeadsEnsemble(members) if "members" in config.structure else members[0]).eval()
    if name == "patterns":
        return None if config.patterns is None else PatternNet(
            len(PATTERN_CLASSES), int(config.patterns["width"])).eval()
    raise ValueError(f"unknown cells network {name!r}")


def rater_median_map(estimate: np.ndarray, rater_sd: float, keep: float) -> np.ndarray:
    """The score two raters' mean would most likely be (its median: the value with the least
    expected absolute error), for raters who give integers 1–5 around ``estimate`` with SD
    ``rater_sd``; ``keep`` × the estimate is blended back in so the map stays strictly
    increasing (ranks, hence Spearman, are unchanged)."""
    from scipy.stats import norm

    estimate = np.asarray(estimate, np.float64)
    ratings = np.arange(1, 6)
    low = np.where(ratings == 1, -np.inf, ratings - 0.5)
    high = np.where(ratings == 5, np.inf, ratings + 0.5)
    one = (norm.cdf((high - estimate[:, None]) / rater_sd)
           - norm.cdf((low - estimate[:, None]) / rater_sd))           # (n, 5)
    pair = one[:, :, None] * one[:, None, :]
    means = (ratings[:, None] + ratings[None, :]) / 2
    grid = np.arange(1.0, 5.01, 0.5)
    cdf = np.cumsum(np.stack([pair[:, means == g].sum(axis=1) for g in grid], axis=1), axis=1)
    median = grid[np.argmax(cdf >= 0.5, axis=1)]
    return (1 - keep) * median + keep * estimate


def _load_state(net, weights: dict[str, np.ndarray], prefix: str) -> None:
    import torch

    state = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in weights.items()
             if k.startswith(prefix)}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelDirError(f"cells weights do not match the config ({prefix}*): {exc}") from exc


def weights_of(nets: dict) -> dict[str, np.ndarray]:
    """State dicts of ``{name: network}`` under ``name.`` prefixes, as numpy arrays."""
    out = {}
    for name, net in nets.items():
        if net is None:
            continue
        for key, value in net.state_dict().items():
            out[f"{name}.{key}"] = value.detach().cpu().numpy().copy()
    return out
