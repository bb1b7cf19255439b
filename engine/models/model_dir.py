"""A trained model is a directory; the engine reads only this (never ``offline`` code).

Layout::

    weights.safetensors   state dict of the UNet (never pickle)
    config.json           schema_version, name, axes ("TX" | "TYX"), architecture (UNetConfig),
                          window {mode: {frames, hop, margin_left, margin_right}} for "accurate"
                          and/or "low_latency", normalization (see engine.preprocess.network_input),
                          preprocess (keyword arguments of engine.preprocess.Preprocessor the
                          model was trained with; {} = its defaults), calibration {pixel_um,
                          dt_ms} it was trained for, class_names, extra
    thresholds.json       {"foreground": p, "spark": p, "wave": p, "puff": p, ...free keys}
    metrics.json          optional: how it scored, on what (free form)
    postprocess.json      optional: tracker and characterization parameters, with the command
                          that chose each tuned one (engine.models.postprocess_file; missing:
                          the code's defaults)
    model.onnx            optional: input "input" (B, 1, T, *spatial) float32, output
                          "probabilities" (B, 4, T, *spatial) softmax; every axis dynamic, spatial
                          sizes multiples of ``architecture.size_multiple()`` (see export_onnx)

``ModelDir.load`` validates everything it reads and raises :class:`ModelDirError` with the path
and the reason. Torch is imported only by :meth:`ModelDir.build_network` / :func:`export_onnx`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acquisition.stream_kind import StreamKind

from ..significance import RESTING_BASELINE_KEY
from ..windows import MODES, WindowGeometry
from .architecture import UNetConfig
from .json_files import ModelDirError, read_json, write_json
from .postprocess_file import PostprocessParams

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
THRESHOLDS_FILE = "thresholds.json"
METRICS_FILE = "metrics.json"
ONNX_FILE = "model.onnx"
MODEL_AXES = tuple(kind.axes for kind in StreamKind.time_series())  # ("TX", "TYX")
DEFAULT_CLASS_NAMES = ("background", "spark", "wave", "puff")
DEFAULT_ROOT = Path(__file__).parent / "default"


def preprocess_options() -> list[str]:
    """Keyword arguments of :class:`engine.preprocess.Preprocessor` a model may set."""
    import inspect

    from ..preprocess import Preprocessor

    names = inspect.signature(Preprocessor.__init__).parameters
    return [n for n in names if n not in ("self", "frame_shape", "dt_ms", "blank", "first_index")]


@dataclass
class ModelConfig:
    """Content of ``config.json`` (everything but the weights and the tuned thresholds)."""

    architecture: UNetConfig
    axes: str
    window: dict[str, WindowGeometry]
    normalization: dict[str, Any]
    calibration: dict[str, Any]  # pixel_um, dt_ms (nominal); optional trained_range
    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES
    name: str = ""
    preprocess: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.axes not in MODEL_AXES:
            raise ModelDirError(f"axes must be one of {sorted(MODEL_AXES)}, got {self.axes!r}")
        if len(self.axes) != self.architecture.ndim:
            raise ModelDirError(f"axes {self.axes!r} do not match architecture ndim "
                                f"{self.architecture.ndim}")
        if not self.window or set(self.window) - set(MODES):
            raise ModelDirError(f"window needs modes among {MODES}, got {sorted(self.window)}")
        if len(self.class_names) != self.architecture.n_classes:
            raise ModelDirError(f"{len(self.class_names)} class names for "
                                f"{self.architecture.n_classes} network outputs")
        for key in ("pixel_um", "dt_ms"):
            if key not in self.calibration:
                raise ModelDirError(f"calibration lacks {key!r}")
        unknown = set(self.preprocess) - set(preprocess_options())
        if unknown:
            raise ModelDirError(f"unknown preprocess options {sorted(unknown)}; "
                                f"known: {preprocess_options()}")

    @property
    def stream_kind(self) -> StreamKind:
        """The streams this model analyses (line-scans or movies), from :attr:`axes`."""
        return StreamKind.from_axes(self.axes)

    def geometry(self, mode: str) -> WindowGeometry:
        """Window geometry of ``mode``; clear error if this model does not offer it."""
        if mode not in self.window:
            raise ModelDirError(f"model {self.name!r} has no {mode!r} window geometry "
                                f"(has {sorted(self.window)})")
        return self.window[mode]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "name": self.name, "axes": self.axes,
            "architecture": self.architecture.to_dict(),
            "window": {mode: geo.to_dict() for mode, geo in self.window.items()},
            "normalization": self.normalization, "preprocess": self.preprocess,
            "calibration": self.calibration, "class_names": list(self.class_names),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ModelDirError(f"unknown config schema_version {version!r} "
                                f"(this castream reads {SCHEMA_VERSION})")
        try:
            return cls(
                architecture=UNetConfig.from_dict(data["architecture"]), axes=data["axes"],
                window={m: WindowGeometry.from_dict(g) for m, g in data["window"].items()},
                normalization=dict(data["normalization"]), calibration=dict(data["calibration"]),
                class_names=tuple(data.get("class_names", DEFAULT_CLASS_NAMES)),
                name=str(data.get("name", "")), extra=dict(data.get("extra", {})),
                preprocess=dict(data.get("preprocess", {})),
            )
        except KeyError as exc:
            raise ModelDirError(f"config lacks key {exc}") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelDirError):
                raise
            raise ModelDirError(f"invalid config: {exc}") from exc


@dataclass
class ModelDir:
    """A model: config, weights (numpy arrays by state-dict key), thresholds, metrics and
    post-processing parameters (``postprocess.json``: read by :meth:`load`, written only by
    the tuning that chooses them, never by :meth:`save`)."""

    config: ModelConfig
    weights: dict[str, np.ndarray]
    thresholds: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    postprocess: PostprocessParams = field(default_factory=PostprocessParams)

    @property
    def onnx_path(self) -> Path | None:
        """``model.onnx`` inside the directory, when there is one."""
        if self.path is None or not (self.path / ONNX_FILE).is_file():
            return None
        return self.path / ONNX_FILE

    @classmethod
    def load(cls, path: str | Path, check_weights: bool = True) -> ModelDir:
        """Read and validate a model directory (``check_weights`` builds the net: needs torch)."""
        path = Path(path)
        if not path.is_dir():
            raise ModelDirError(f"model directory {path} does not exist")
        config = ModelConfig.from_dict(read_json(path / CONFIG_FILE))
        thresholds = _check_thresholds(read_json(path / THRESHOLDS_FILE), path)
        metrics_path = path / METRICS_FILE
        metrics = read_json(metrics_path) if metrics_path.is_file() else {}
        model = cls(config, _read_weights(path / WEIGHTS_FILE), thresholds, metrics, path,
                    PostprocessParams.load(path))
        if check_weights:
            model.build_network()
        return model

    def save(self, path: str | Path) -> Path:
        """Write the directory (created if needed); returns its path."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.array(v, order="C") for k, v in self.weights.items()}  # keeps 0-d
        save_file(arrays, str(path / WEIGHTS_FILE), metadata={"format": "castream-unet"})
        write_json(path / CONFIG_FILE, self.config.to_dict())
        write_json(path / THRESHOLDS_FILE, _check_thresholds(self.thresholds, path))
        write_json(path / METRICS_FILE, self.metrics)
        self.path = path
        self._refresh_onnx()
        return path

    def _refresh_onnx(self) -> None:
        """Re-export the directory's ``model.onnx`` when it was exported from other weights,
        so that a saved model never keeps a graph that runs older weights."""
        onnx_path = self.onnx_path
        if onnx_path is not None and read_onnx_weights_digest(onnx_path) != weights_digest(self):
            log.info("%s ran other weights: re-exporting it", onnx_path)
            export_onnx(self, onnx_path)

    @classmethod
    def from_network(cls, network: nn.Module, config: ModelConfig,
                     thresholds: dict[str, float], metrics: dict[str, Any] | None = None,
                     ) -> ModelDir:
        """Wrap a trained :class:`~engine.models.unet.UNet` (its state dict is copied)."""
        weights = {k: v.detach().cpu().numpy().copy() for k, v in network.state_dict().items()}
        return cls(config, weights, dict(thresholds), dict(metrics or {}))

    def build_network(self) -> nn.Module:
        """The torch module with the weights loaded, in eval mode; clear error on mismatch."""
        import torch

        from .unet import UNet

        net = UNet(self.config.architecture)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in self.weights.items()}
        problems = _compare_shapes(expected, got)
        if problems:
            raise ModelDirError(f"weights do not match the architecture in {CONFIG_FILE} "
                                f"({self.path}): " + "; ".join(problems))
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()})
        return net.eval()


def _compare_shapes(expected: dict[str, tuple], got: dict[str, tuple]) -> list[str]:
    problems = []
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
    for key in sorted(set(expected) & set(got)):
        if expected[key] != got[key]:
            problems.append(f"{key}: config implies {expected[key]}, weights have {got[key]}")
    return problems


def _check_thresholds(data: dict[str, Any], path: Path) -> dict[str, float]:
    if "foreground" not in data:
        raise ModelDirError(f"{path / THRESHOLDS_FILE}: needs a 'foreground' threshold")
    out = dict(data)
    for key in ("foreground", *DEFAULT_CLASS_NAMES[1:]):
        if key in out:
            value = out[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ModelDirError(f"{path / THRESHOLDS_FILE}: {key} must be a probability "
                                    f"in [0, 1], got {value!r}")
            out[key] = float(value)
    if RESTING_BASELINE_KEY in out and not isinstance(out[RESTING_BASELINE_KEY], bool):
        raise ModelDirError(f"{path / THRESHOLDS_FILE}: {RESTING_BASELINE_KEY} must be true or "
                            f"false, got {out[RESTING_BASELINE_KEY]!r}")
    return out


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise ModelDirError(f"model directory {path.parent} lacks {path.name}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelDirError(f"{path} is not a readable safetensors file: {exc}") from exc


def default_model_path(stream_kind: StreamKind, mode: str = "accurate",
                       root: Path | None = None) -> Path:
    """Directory of the packaged default model for streams of ``stream_kind`` and ``mode``.

    Looks for ``default/<kind>-<mode>/`` then ``default/<kind>/`` (a model carrying several
    modes) under ``engine/models/``, ``<kind>`` being the model kind (``linescan``/``movie``).
    """
    kind = stream_kind.model_kind  # ValueError for images: no event model
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    root = DEFAULT_ROOT if root is None else Path(root)
    for candidate in (root / f"{kind}-{mode}", root / kind):
        config = candidate / CONFIG_FILE
        if config.is_file() and mode in json.loads(config.read_text()).get("window", {}):
            return candidate
    raise FileNotFoundError(
        f"no default {kind} model for mode {mode!r} in {root}; run `castream train` "
        f"(see offline/) to create {root / f'{kind}-{mode}'}, or pass --model DIR")


def export_onnx(model: ModelDir, path: str | Path, opset: int = 17) -> Path:
    """Export ``model`` (UNet + softmax) to ONNX: input "input", output "probabilities"."""
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    class ChannelSoftmax(torch.nn.Module):
        """Softmax over the class axis as elementwise ops and reductions. onnxruntime's CPU
        Softmax operator on this (non-last) axis was slow: ``python bench/network_cpu.py
        --threads 1`` measured 72.8 → 56.9 ms per line-scan window and 436 → 228 ms per movie
        window with this instead (docs/RESULTS.md, "Speed on this CPU")."""

        def forward(self, logits: torch.Tensor) -> torch.Tensor:
            e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
            return e / e.sum(dim=1, keepdim=True)

    net = torch.nn.Sequential(model.build_network(), ChannelSoftmax()).eval()
    multiple = model.config.architecture.size_multiple()
    example = torch.zeros((1, 1, *(2 * m for m in multiple)), dtype=torch.float32)
    axes = {0: "batch", **{i + 2: f"axis{i}" for i in range(len(multiple))}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape ints (no-op branch)
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["probabilities"],
                          dynamic_axes={"input": axes, "probabilities": axes})
    _stamp_weights_digest(path, weights_digest(model))
    log.info("exported %s (opset %d)", path, opset)
    return path


WEIGHTS_DIGEST_KEY = "castream_weights_sha256"


def weights_digest(model: ModelDir, file: str = WEIGHTS_FILE) -> str:
    """SHA-256 of the weights the model runs: the bytes of ``file`` (``weights.safetensors``)
    when the model was loaded from (or saved to) a directory, else of its arrays by key."""
    digest = hashlib.sha256()
    weights_file = None if model.path is None else model.path / file
    if weights_file is not None and weights_file.is_file():
        with open(weights_file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for key in sorted(model.weights):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(model.weights[key]).tobytes())
    return digest.hexdigest()


def _stamp_weights_digest(onnx_path: Path, digest: str) -> None:
    """Record in the ONNX file's metadata which weights it was exported from."""
    import onnx

    graph = onnx.load(str(onnx_path))
    kept = [p for p in graph.metadata_props if p.key != WEIGHTS_DIGEST_KEY]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    graph.metadata_props.add(key=WEIGHTS_DIGEST_KEY, value=digest)
    onnx.save(graph, str(onnx_path))


def read_onnx_weights_digest(onnx_path: Path) -> str | None:
    """The weights digest recorded in an ONNX file's metadata (``None`` if it has none)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False)
    return next((p.value for p in graph.metadata_props if p.key == WEIGHTS_DIGEST_KEY), None)


def check_onnx_matches_weights(model: ModelDir, onnx_path: Path) -> None:
    """Refuse (``ModelDirError``, one line naming the fix) an ONNX graph that was exported from
    other weights than the model's ``weights.safetensors``, or that records no digest (exported
    before castream recorded one, so it may be older than the weights)."""
    recorded = read_onnx_weights_digest(onnx_path)
    fix = (f"re-export it with `castream export {onnx_path.parent}`, or run with "
           "`--backend torch`")
    if recorded is None:
        raise ModelDirError(
            f"{onnx_path} does not record which weights it was exported from (an export older "
            f"than this check), so it may not match {WEIGHTS_FILE}: {fix}")
    actual = weights_digest(model)
    if recorded != actual:
        raise ModelDirError(
            f"{onnx_path} was exported from other weights than {WEIGHTS_FILE} (sha256 "
            f"{recorded[:12]}... vs {actual[:12]}...): {fix}")


def __getattr__(name: str) -> Any:
    """``default_linescan_config`` / ``default_movie_config`` live in ``defaults`` (which imports
    this module); reachable here too for callers that look them up on ``model_dir``."""
    if name in ("default_linescan_config", "default_movie_config"):
        from . import defaults

        return getattr(defaults, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
