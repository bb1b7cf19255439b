"""The ONNX graph of a cells model directory's optional 3-D head and its onnxruntime session.

``stack_head.onnx``, next to ``stack_head.safetensors`` (:mod:`engine.cells.stack_head`):
the :class:`~engine.cells.networks3d.StackScorer` (or its
:class:`~engine.cells.networks.HeadsEnsemble`) as :class:`~engine.cells.networks.Probabilities`
of the structure kind — the score and the class probabilities of :data:`HEADS`, what
:meth:`StackHead.score <engine.cells.stack_head.StackHead.score>` returns — on inputs
``patches`` ``(B, K, 2, Z, P, P)`` (Z = 1 for a ``projection`` head: the maximum over the
planes is taken before the graph) and ``features`` ``(B, F)``, with a dynamic batch axis, at
the other cells graphs' opset (:data:`engine.cells.onnx_runtime.OPSET`). Like them it records
the SHA-256 of the weights it was exported from (here of ``stack_head.safetensors``).

:func:`open_stack_session` gives the session when the graph is there, onnxruntime imports,
the digest is that of the head's weights and the graph's patch shape is the config's;
otherwise ``None`` and why, and the head runs with torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..models.model_dir import _stamp_weights_digest, weights_digest
from .onnx_runtime import OPSET, CellsSessions
from .schema import HEADS

if TYPE_CHECKING:
    from .stack_head import StackHead

log = logging.getLogger(__name__)

GRAPH_FILE = "stack_head.onnx"
NAME = "stack_head"
INPUTS = ("patches", "features")
OUTPUTS = ("structure_score", *HEADS)


def head_digest(head: StackHead) -> str:
    """SHA-256 of the head's weights: the bytes of ``stack_head.safetensors`` when the head
    was loaded from (or saved to) a directory, else of its arrays by key."""
    from .stack_head import WEIGHTS_FILE

    return weights_digest(head, WEIGHTS_FILE)  # type: ignore[arg-type]


def patch_shape(head: StackHead) -> tuple[int, ...]:
    """``(K, 2, Z, P, P)`` of one cell as the network sees it (Z = 1 for a projection head)."""
    geometry = head.geometry
    side = int(geometry["patch_px"])
    planes = 1 if head.config.get("projection") else int(head.config["z_slices"])
    return (int(geometry["n_patches"]), 2, planes, side, side)


def example_inputs(head: StackHead, batch: int = 2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random float32 ``patches`` and ``features`` for ``batch`` cells (export and checks)."""
    rng = np.random.default_rng(seed)
    n_features = len(head.config["structure_features"]) if head.config["use_features"] else 0
    return (rng.normal(size=(batch, *patch_shape(head))).astype(np.float32),
            rng.normal(size=(batch, n_features)).astype(np.float32))


def export_stack_onnx(head: StackHead, directory: str | Path | None = None,
                      opset: int = OPSET) -> Path:
    """Write ``stack_head.onnx`` of ``head`` into ``directory`` (default: the head's own);
    returns its path."""
    import warnings

    import torch

    from .networks import Probabilities

    path = Path(directory or head.path) / GRAPH_FILE
    net = Probabilities(head.net(), "structure").eval()
    example = tuple(torch.from_numpy(a) for a in example_inputs(head))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape ints
        torch.onnx.export(net, example, str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes={n: {0: "batch"} for n in (*INPUTS, *OUTPUTS)})
    _stamp_weights_digest(path, head_digest(head))
    log.info("exported %s (opset %d, %d bytes)", path, opset, path.stat().st_size)
    return path


class StackSession(CellsSessions):
    """The onnxruntime session of ``stack_head.onnx`` (fed by input name: a head without
    features has a graph without a ``features`` input)."""

    def __init__(self, path: Path) -> None:
        super().__init__({NAME: path})

    def patch_shape(self) -> tuple:
        """The graph's ``patches`` shape after the batch axis."""
        inputs = {arg.name: arg for arg in self._sessions[NAME].get_inputs()}
        return tuple(inputs[INPUTS[0]].shape[1:]) if INPUTS[0] in inputs else ()

    def score(self, patches: np.ndarray, features: np.ndarray) -> list[np.ndarray]:
        session = self._sessions[NAME]
        given = dict(zip(INPUTS, (patches, features), strict=True))
        return session.run(None, {arg.name: np.ascontiguousarray(given[arg.name], np.float32)
                                  for arg in session.get_inputs()})


def open_stack_session(head: StackHead) -> tuple[StackSession | None, str]:
    """The session of ``head``'s graph, or None; and the reason either way."""
    if head.path is None:
        return None, "the head was not loaded from a directory"
    path = head.path / GRAPH_FILE
    if not path.is_file():
        return None, f"{head.path} has no {GRAPH_FILE}"
    try:
        session = StackSession(path)
    except ImportError:
        return None, "onnxruntime is not installed"
    if session.digest(NAME) != head_digest(head):
        return None, (f"{path} was not exported from this stack_head.safetensors (re-export "
                      f"it: castream export {head.path})")
    if session.patch_shape() != patch_shape(head):
        return None, (f"{path} takes patches {session.patch_shape()}, stack_head.json "
                      f"{patch_shape(head)} (re-export it: castream export {head.path})")
    return session, f"graph {path}"


def max_difference(head: StackHead, session: StackSession, batches: tuple[int, ...] = (1, 5),
                   seed: int = 0) -> float:
    """Largest |torch − onnxruntime| of the head's outputs on random inputs of every batch
    size in ``batches``."""
    import torch

    from .networks import Probabilities

    net, worst = Probabilities(head.net(), "structure").eval(), 0.0
    for batch in batches:
        inputs = example_inputs(head, batch, seed)
        with torch.inference_mode():
            ref = net(*map(torch.from_numpy, inputs))
        got = session.score(*inputs)
        worst = max(worst, *(float(np.max(np.abs(g - r.numpy())))
                             for g, r in zip(got, ref, strict=True)))
    return worst
