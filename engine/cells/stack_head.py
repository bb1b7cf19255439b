"""The optional 3-D head of a cells model directory: AMES labels from z-stack patches.

Files (both or neither; a directory without them works as before)::

    stack_head.json          {"kind": "stack_cnn", "channels", "hidden", "use_features",
                             "members" (several: averaged by HeadsEnsemble),
                             "projection" (true: a control fed the maximum over Z),
                             "patches": {"patch_px", "patch_pixel_um", "n_patches"},
                             "z_slices", "z_step_um", "structure_features", "feature_mean",
                             "feature_scale", "feature_fill", "trained", "schema_version"}
    stack_head.safetensors   the :class:`~engine.cells.networks3d.StackScorer` state dict
    stack_head.onnx          optional: the network as an ONNX graph (:mod:`.stack_onnx`);
                             run with onnxruntime when it matches the weights and
                             onnxruntime imports, else the head runs with torch

The head scores a true cell's ``(K, 2, Z, P, P)`` patches
(:func:`~engine.cells.zpatches.stack_patches`) and, with ``use_features``, its ROI features
measured on the maximum projection and standardized by the copy of the normalization kept
here. It was trained on ``z_slices`` planes ``z_step_um`` apart; :meth:`StackHead.fits`
checks the number of planes only (the engine is not told a stack's step).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..models.model_dir import ModelDirError
from .features import feature_matrix
from .schema import HEADS

log = logging.getLogger(__name__)

CONFIG_FILE = "stack_head.json"
WEIGHTS_FILE = "stack_head.safetensors"
STACK_HEAD_SCHEMA = 1


@dataclass
class StackHead:
    config: dict[str, Any]
    weights: dict[str, np.ndarray]
    path: Path | None = None
    _net: Any = field(default=None, repr=False)
    _session: Any = field(default=None, repr=False)  # None: not chosen yet; False: torch

    @staticmethod
    def present(path: str | Path) -> bool:
        """Whether the directory holds a 3-D head (its config file)."""
        return (Path(path) / CONFIG_FILE).is_file()

    @classmethod
    def load(cls, path: str | Path) -> StackHead:
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise ModelDirError(f"{path} needs both {CONFIG_FILE} and {WEIGHTS_FILE} for a 3-D head")
        config = json.loads((path / CONFIG_FILE).read_text())
        if config.get("kind") != "stack_cnn" or config.get("schema_version") != STACK_HEAD_SCHEMA:
            raise ModelDirError(f"{path / CONFIG_FILE} is not a v{STACK_HEAD_SCHEMA} stack_cnn "
                                f"head (kind {config.get('kind')!r})")
        head = cls(config, load_file(str(path / WEIGHTS_FILE)), path)
        if head.runtime == "torch":
            head.net()  # weights checked against the config now, not at the first cell
        return head

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.weights.items()},
                  str(path / WEIGHTS_FILE), metadata={"format": "castream-cells-stack-head"})
        self.config.pop("onnx_export", None)  # a check of an earlier graph (offline.export)
        (path / CONFIG_FILE).write_text(json.dumps(self.config, indent=2, default=float) + "\n")
        self.path, self._session = path, None
        from .stack_onnx import GRAPH_FILE, export_stack_onnx

        if (path / GRAPH_FILE).is_file():
            export_stack_onnx(self, path)  # never keep a graph of other weights
        return path

    @property
    def runtime(self) -> str:
        """What runs the head, "onnxruntime" (its ``stack_head.onnx``) or "torch" (chosen at
        the first use and logged once, with why)."""
        if self._session is None:
            from .stack_onnx import open_stack_session

            session, why = open_stack_session(self)
            self._session = session or False
            log.info("3-D head runs on %s (%s)", self.runtime, why)
        return "onnxruntime" if self._session else "torch"

    @property
    def geometry(self) -> dict[str, Any]:
        return self.config["patches"]

    def fits(self, stack: np.ndarray) -> bool:
        """True for a ``(Z, Y, X)`` stack with the number of planes the head was trained on."""
        return stack.ndim == 3 and stack.shape[0] == int(self.config["z_slices"])

    def net(self):
        """The :class:`~engine.cells.networks3d.StackScorer` with its weights (eval mode)."""
        if self._net is None:
            import torch

            from .networks import HeadsEnsemble
            from .networks3d import StackScorer

            n_features = len(self.config["structure_features"]) if self.config["use_features"] \
                else 0
            members = [StackScorer(n_features, tuple(self.config["channels"]),
                                   int(self.config["hidden"]))
                       for _ in range(int(self.config.get("members", 1)))]
            net = members[0] if len(members) == 1 else HeadsEnsemble(members)
            try:
                net.load_state_dict({k: torch.from_numpy(np.array(v))
                                     for k, v in self.weights.items()})
            except RuntimeError as exc:
                raise ModelDirError(f"3-D head weights do not match {CONFIG_FILE}: {exc}") from exc
            self._net = net.eval()
        return self._net

    def standardized(self, rows: list[dict]) -> np.ndarray:
        names = list(self.config["structure_features"])
        matrix = feature_matrix(rows, names, self.config["feature_fill"])
        mean = np.array([self.config["feature_mean"][n] for n in names], np.float32)
        scale = np.array([self.config["feature_scale"][n] for n in names], np.float32)
        return (matrix - mean) / scale

    def score(self, patches: np.ndarray, features: np.ndarray,
              batch: int = 32) -> dict[str, np.ndarray]:
        """Raw score estimate (1–5) and class probabilities per head (:data:`HEADS`) of
        ``patches`` ``(n, K, 2, Z, P, P)`` and standardized ``features`` ``(n, F)``, with
        onnxruntime or torch (:attr:`runtime`)."""
        if self.config.get("projection"):
            patches = project(patches)
        run = self._session.score if self.runtime == "onnxruntime" else self._torch_outputs
        outs = [dict(zip(("structure_score", *HEADS),
                         run(np.ascontiguousarray(patches[i:i + batch], np.float32),
                             np.ascontiguousarray(features[i:i + batch], np.float32)),
                         strict=True))
                for i in range(0, len(patches), batch)]
        if not outs:
            return {"structure_score": np.zeros(0), **{h: np.zeros((0, 4 if h != "cell_source"
                                                                  else 3)) for h in HEADS}}
        return {name: np.concatenate([o[name] for o in outs]) for name in outs[0]}

    def _torch_outputs(self, patches: np.ndarray, features: np.ndarray) -> list[np.ndarray]:
        """Score and class probabilities of :data:`HEADS` from torch (what the graph gives)."""
        import torch

        from .networks import Probabilities

        with torch.inference_mode():
            out = Probabilities(self.net(), "structure")(torch.from_numpy(patches),
                                                         torch.from_numpy(features))
        return [t.numpy() for t in out]


def project(patches: np.ndarray) -> np.ndarray:
    """``(n, K, C, Z, P, P)`` patches as one plane, their maximum over Z (the control head
    that sees what a maximum projection shows, in the same network)."""
    return np.asarray(patches).max(axis=3, keepdims=True)


@lru_cache(maxsize=4)
def _load_cached(path: str) -> StackHead:
    return StackHead.load(path)


def stack_head_of(model_path: str | Path | None) -> StackHead | None:
    """The 3-D head of a cells model directory (loaded once), or None without one."""
    if model_path is None or not StackHead.present(model_path):
        return None
    return _load_cached(str(Path(model_path).resolve()))


def stack_labels(stack: np.ndarray, labels: np.ndarray, rows: list[dict], pixel_um: float,
                 head: StackHead, levels: tuple[float, float],
                 classes: dict[str, list]) -> list[dict[str, Any]]:
    """AMES labels (``sarcomerisation``, ``directionality``, ``cell_source``, named as in
    ``classes``) of every row from the 3-D head on its z-stack patches; ``levels`` are the
    field's background and foreground on the maximum projection."""
    from .zpatches import stack_patches

    if not rows:
        return []
    geometry = head.geometry
    patches = stack_patches(stack, labels, rows, pixel_um, levels[0], levels[1] - levels[0],
                            int(geometry["patch_px"]), float(geometry["patch_pixel_um"]),
                            int(geometry["n_patches"]))
    features = head.standardized(rows) if head.config["use_features"] else \
        np.zeros((len(rows), 0), np.float32)
    scored = head.score(patches, features)
    return [{h: classes[h][int(np.argmax(scored[h][i]))] for h in HEADS}
            for i in range(len(rows))]
