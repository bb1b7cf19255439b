"""Tiny model directories for tests (no training, no network access).

``make_tiny_model_dir(path, ndim)`` writes a valid model directory holding a tiny U-Net:

- ``behaviour="random"``: seeded random weights (and random batch-norm statistics, so the
  eval-mode network is not trivially the identity) — for plumbing, parity and shape tests;
- ``behaviour="threshold"``: hand-set weights of a one-level U-Net that says "spark" wherever
  the network input (ΔF/F0) exceeds ``threshold_dff0`` (by ~0.05) and "background" elsewhere —
  a real-structure stand-in for a trained model in pipeline tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.models.architecture import UNetConfig
from engine.models.model_dir import ModelConfig, ModelDir, export_onnx
from engine.windows import WindowGeometry

TINY_WINDOWS = {
    "accurate": WindowGeometry(frames=32, hop=16, margin_left=8, margin_right=8),
    "low_latency": WindowGeometry(frames=16, hop=8, margin_left=6, margin_right=2),
}


def _random_weights(config: UNetConfig, seed: int) -> dict[str, np.ndarray]:
    import torch

    from engine.models.unet import UNet

    torch.manual_seed(seed)
    net = UNet(config)
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            n = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _threshold_weights(ndim: int, threshold_dff0: float) -> dict[str, np.ndarray]:
    """One conv (centre tap 1) → BN shifting by the threshold → ReLU → 1x1 head."""
    kernel = (3,) * ndim
    conv = np.zeros((2, 1, *kernel), np.float32)
    conv[(slice(None), 0, *[1] * ndim)] = 1.0
    head = np.zeros((4, 2, *(1,) * ndim), np.float32)
    head[(1, 0, *[0] * ndim)] = 40.0  # spark logit = 40 * relu(x - threshold) - 2
    prefix = "encoders.0.body"
    return {
        f"{prefix}.0.weight": conv,
        f"{prefix}.1.weight": np.ones(2, np.float32),
        f"{prefix}.1.bias": np.zeros(2, np.float32),
        f"{prefix}.1.running_mean": np.array([threshold_dff0, 0.0], np.float32),
        f"{prefix}.1.running_var": np.full(2, 1.0 - 1e-5, np.float32),
        f"{prefix}.1.num_batches_tracked": np.array(0, np.int64),
        "head.weight": head,
        "head.bias": np.array([0.0, -2.0, -10.0, -10.0], np.float32),
    }


def tiny_architecture(ndim: int, behaviour: str = "random") -> UNetConfig:
    """The architecture :func:`make_tiny_model_dir` uses."""
    if behaviour == "threshold":
        return UNetConfig(ndim=ndim, depth=1, base_channels=2, convs_per_block=1)
    if ndim == 3:
        return UNetConfig(ndim=3, depth=2, base_channels=4, stem_stride=(1, 2, 2),
                          factorized=True)
    return UNetConfig(ndim=2, depth=2, base_channels=4)


def make_tiny_model_dir(path: str | Path, ndim: int = 2, *, behaviour: str = "random",
                        seed: int = 0, modes: tuple[str, ...] = ("accurate", "low_latency"),
                        windows: dict[str, WindowGeometry] | None = None,
                        thresholds: dict[str, float] | None = None,
                        calibration: dict[str, float] | None = None,
                        threshold_dff0: float = 0.5, with_onnx: bool = False,
                        name: str = "tiny", extra: dict[str, Any] | None = None) -> Path:
    """Write a tiny, valid model directory at ``path`` and return ``path``.

    Parameters
    ----------
    ndim : 2 (line-scan, axes "TX") or 3 (movie, axes "TYX").
    behaviour : "random" or "threshold" (see module docstring).
    modes : window modes the model carries (geometries from ``windows`` or ``TINY_WINDOWS``).
    with_onnx : also write ``model.onnx`` into the directory.
    """
    if behaviour not in ("random", "threshold"):
        raise ValueError(f"behaviour must be 'random' or 'threshold', got {behaviour!r}")
    arch = tiny_architecture(ndim, behaviour)
    geometries = windows or TINY_WINDOWS
    if calibration is None:
        calibration = {"pixel_um": 0.14, "dt_ms": 1.5} if ndim == 2 else {"pixel_um": 0.2, "dt_ms": 6.8}
    config = ModelConfig(
        architecture=arch, axes="TX" if ndim == 2 else "TYX",
        window={m: geometries[m] for m in modes},
        normalization={"input": "dff0", "offset": 0.0, "scale": 1.0, "clip": [-2.0, 12.0]},
        calibration=dict(calibration), name=name, extra=dict(extra or {}),
    )
    weights = (_threshold_weights(ndim, threshold_dff0) if behaviour == "threshold"
               else _random_weights(arch, seed))
    if thresholds is None:
        thresholds = {"foreground": 0.5, "spark": 0.5, "wave": 0.5, "puff": 0.5}
        # untrained models mostly "detect" noise; the plumbing tests that use them need those
        # events, so the significance filter (tested on its own) is off for them
        thresholds["min_significance"] = -1e9
    model = ModelDir(config, weights, thresholds,
                     {"note": f"tiny {behaviour} test model, not trained"})
    out = model.save(path)
    if with_onnx:
        export_onnx(model, out / "model.onnx")
    return out
