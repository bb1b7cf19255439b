"""ONNX graphs of the cells model's networks and their onnxruntime sessions.

A cells model directory may hold ``curator.onnx``, ``structure.onnx`` and (a model with a
pattern net) ``pattern.onnx``: the curator's, the structure network's and the pattern net's
:class:`~engine.cells.networks.Probabilities` (what :meth:`~engine.cells.model.CellsModel.curate`,
:meth:`~engine.cells.model.CellsModel.score` and
:meth:`~engine.cells.model.CellsModel.pattern_classes` read), exported by
:func:`export_cells_onnx` (``castream export DIR``, ``castream train-cells``) with a dynamic
batch axis (the pattern graph's image height and width are dynamic too) at the event models'
opset. Each graph records the SHA-256 of the ``weights.safetensors`` it was exported from, as
the event models' ``model.onnx`` does.

:func:`open_sessions` gives the onnxruntime sessions when every graph of the model
(:func:`graphs`) is there, onnxruntime imports and the graphs match the weights; otherwise
``None`` and why, and the model runs all its networks with torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..models.model_dir import WEIGHTS_DIGEST_KEY, _stamp_weights_digest, weights_digest
from .schema import HEADS

if TYPE_CHECKING:
    from .model import CellsModel

log = logging.getLogger(__name__)

OPSET = 17  # as engine.models.model_dir.export_onnx
GRAPHS = {"curator": "curator.onnx", "structure": "structure.onnx", "patterns": "pattern.onnx"}
OUTPUTS = {"curator": ("is_cell_proba",),
           "structure": ("structure_score", *HEADS),
           "patterns": ("pattern_proba",)}
#: the pattern net's example image (odd and not square: the graph's last row/column of its
#: stride-2 grid and both spatial axes are exercised)
PATTERN_EXAMPLE_PX = (45, 62)


def graphs(model: CellsModel) -> dict[str, str]:
    """The graph files of ``model``'s networks by name (no ``pattern.onnx`` for a model
    without a pattern net)."""
    return {name: file for name, file in GRAPHS.items()
            if name != "patterns" or model.config.patterns is not None}


def input_names(model: CellsModel, name: str) -> tuple[str, ...]:
    """The inputs of network ``name``, in the order its ``forward`` takes them."""
    if name == "curator":
        return ("crops", "extra")
    if name == "patterns":
        return ("image",)
    return ("patches", "features") if model.structure_kind == "crop_cnn" else ("features",)


def example_inputs(model: CellsModel, name: str, batch: int = 2,
                   seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random float32 inputs of network ``name`` for ``batch`` ROIs (export and checks)."""
    config, rng = model.config, np.random.default_rng(seed)
    shapes = {"extra": (len(config.curation_features),),
              "features": (len(config.structure_features),)}
    side = int(config.curator["crop_px"])
    shapes["crops"] = (2, side, side)
    shapes["image"] = (1, *PATTERN_EXAMPLE_PX)
    if model.structure_kind == "crop_cnn":
        geometry = config.structure["patches"]
        side = int(geometry["patch_px"])
        shapes["patches"] = (int(geometry["n_patches"]), 2 + len(geometry.get("extra", [])),
                             side, side)
    return tuple(rng.normal(size=(batch, *shapes[n])).astype(np.float32)
                 for n in input_names(model, name))


def export_cells_onnx(model: CellsModel, directory: str | Path | None = None,
                      opset: int = OPSET) -> dict[str, Path]:
    """Write the graphs of ``model`` (:func:`graphs`) into ``directory`` (default: the
    model's own directory); returns their paths by network name."""
    import warnings

    import torch

    directory = Path(directory or model.path)
    digest = weights_digest(model)
    paths = {}
    for name, file in graphs(model).items():
        names, outputs = input_names(model, name), OUTPUTS[name]
        example = tuple(torch.from_numpy(a) for a in example_inputs(model, name))
        paths[name] = directory / file
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape ints
            torch.onnx.export(model.probability_net(name), example, str(paths[name]),
                              dynamo=False, opset_version=opset, input_names=list(names),
                              output_names=list(outputs),
                              dynamic_axes=_dynamic_axes(name, (*names, *outputs)))
        _stamp_weights_digest(paths[name], digest)
        log.info("exported %s (opset %d, %d bytes)", paths[name], opset,
                 paths[name].stat().st_size)
    return paths


def _dynamic_axes(name: str, tensors: tuple[str, ...]) -> dict[str, dict[int, str]]:
    """Batch axis of every tensor; and height and width of the pattern net's image and
    probabilities (any field size, the output at half of it)."""
    if name != "patterns":
        return {n: {0: "batch"} for n in tensors}
    image, proba = tensors
    return {image: {0: "batch", 2: "height", 3: "width"},
            proba: {0: "batch", 2: "grid_height", 3: "grid_width"}}


class CellsSessions:
    """onnxruntime CPU sessions of the cells graphs (idle threads do not spin: the analysis
    shares the CPU, as in :class:`~engine.backends.onnxruntime_backend.OnnxRuntimeBackend`)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sessions = {name: ort.InferenceSession(str(path), options,
                                                     providers=["CPUExecutionProvider"])
                          for name, path in paths.items()}

    def digest(self, name: str) -> str | None:
        """The weights digest recorded in graph ``name`` (None: it records none)."""
        meta = self._sessions[name].get_modelmeta().custom_metadata_map
        return meta.get(WEIGHTS_DIGEST_KEY)

    def run(self, name: str, *inputs: np.ndarray) -> list[np.ndarray]:
        session = self._sessions[name]
        feed = {arg.name: value for arg, value in zip(session.get_inputs(), inputs, strict=True)}
        return session.run(None, feed)


def open_sessions(model: CellsModel) -> tuple[CellsSessions | None, str]:
    """The sessions of ``model``'s graphs, or None; and the reason either way."""
    if model.path is None:
        return None, "the model was not loaded from a directory"
    paths = {name: model.path / file for name, file in graphs(model).items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        return None, f"{model.path} has no {' / '.join(missing)}"
    try:
        sessions = CellsSessions(paths)
    except ImportError:
        return None, "onnxruntime is not installed"
    digest = weights_digest(model)
    stale = [str(path) for name, path in paths.items() if sessions.digest(name) != digest]
    if stale:
        return None, (f"{stale[0]} was not exported from this weights.safetensors (re-export "
                      f"it: castream export {model.path})")
    return sessions, f"graphs of {model.path}"


def max_differences(model: CellsModel, sessions: CellsSessions, batches: tuple[int, ...] = (1, 5),
                    seed: int = 0) -> dict[str, float]:
    """Largest |torch − onnxruntime| of each network's outputs on random inputs of every batch
    size in ``batches``."""
    import torch

    worst = dict.fromkeys(graphs(model), 0.0)
    for name in worst:
        for batch in batches:
            inputs = example_inputs(model, name, batch, seed)
            with torch.inference_mode():
                ref = model.probability_net(name)(*map(torch.from_numpy, inputs))
            got = sessions.run(name, *inputs)
            worst[name] = max(worst[name], *(float(np.max(np.abs(g - r.numpy())))
                                             for g, r in zip(got, ref, strict=True)))
    return worst
