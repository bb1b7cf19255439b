"""The default architectures and window geometries (sized for CPU real time; see
``bench/network_cpu.py``). The offline training agent trains the packaged defaults with these.

Line-scans (512 px, 1.5 ms/line): a full-resolution 2D U-Net, 4 levels, 8 base channels. Its
receptive field is ~97 lines (±48), so 64-line margins already give every kept line its full
context (wider margins would only cost compute).

- accurate: 256-line windows, keep 128 (margins 64/64): look-ahead 64..191 lines (96..287 ms).
- low_latency: 144-line windows, keep 64, margins 64/16: look-ahead 16..79 lines (24..119 ms);
  the model is trained for that asymmetric context.

Movies (64×512 px, 6.8 ms/frame): a lean 3D U-Net: a stride-(1,2,2) stem (halve Y and X, keep
time), then 4 levels with (2+1)D factorized convolutions, 8 base channels, pooling by 2; the
logits return to full resolution through a learned transposed conv plus a pointwise head that
also sees the full-resolution input. Receptive field along time ~±46 frames; the accurate
margins (32) trade its faint outer part for half the compute of 48-frame margins.

- accurate: 128-frame windows, keep 64 (margins 32/32): look-ahead 32..95 frames (218..646 ms).
- low_latency: 64-frame windows, keep 16, margins 32/16: look-ahead 16..31 frames (109..211 ms).

Dotti et al. (for comparison): 256-frame windows, keep 32 (margins 112/112): 112..143 frames.
"""

from __future__ import annotations

from acquisition.stream_kind import StreamKind

from ..windows import MODES, WindowGeometry
from .architecture import UNetConfig
from .model_dir import ModelConfig

DEFAULT_NORMALIZATION = {"input": "dff0", "offset": 0.0, "scale": 1.0, "clip": [-2.0, 12.0]}

LINESCAN_WINDOWS = {
    "accurate": WindowGeometry(frames=256, hop=128, margin_left=64, margin_right=64),
    "low_latency": WindowGeometry(frames=144, hop=64, margin_left=64, margin_right=16),
}
MOVIE_WINDOWS = {
    "accurate": WindowGeometry(frames=128, hop=64, margin_left=32, margin_right=32),
    "low_latency": WindowGeometry(frames=64, hop=16, margin_left=32, margin_right=16),
}
DOTTI_WINDOW = WindowGeometry(frames=256, hop=32, margin_left=112, margin_right=112)


def default_linescan_architecture() -> UNetConfig:
    """2D U-Net for ``(T, X)``: 4 levels, 8 base channels, full resolution."""
    return UNetConfig(ndim=2, depth=4, base_channels=8, norm="batch")


def default_movie_architecture() -> UNetConfig:
    """Lean 3D U-Net for ``(T, Y, X)``: (1,2,2) stem, 4 levels, (2+1)D convs, 8 channels."""
    return UNetConfig(ndim=3, depth=4, base_channels=8, stem_stride=(1, 2, 2),
                      factorized=True, norm="batch")


def _modes(windows: dict[str, WindowGeometry], mode: str | None) -> dict[str, WindowGeometry]:
    if mode is None:
        return dict(windows)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} or None, got {mode!r}")
    return {mode: windows[mode]}


def default_linescan_config(mode: str | None = "accurate") -> ModelConfig:
    """Config of the default line-scan model for ``mode`` (``None``: both geometries)."""
    name = f"linescan-{mode}" if mode else "linescan"
    return ModelConfig(
        architecture=default_linescan_architecture(), axes=StreamKind.LINESCAN.axes,
        window=_modes(LINESCAN_WINDOWS, mode), normalization=dict(DEFAULT_NORMALIZATION),
        calibration={"pixel_um": 0.14, "dt_ms": 1.5}, name=name,
    )


def default_movie_config(mode: str | None = "accurate") -> ModelConfig:
    """Config of the default full-frame model for ``mode`` (``None``: both geometries)."""
    name = f"movie-{mode}" if mode else "movie"
    return ModelConfig(
        architecture=default_movie_architecture(), axes=StreamKind.MOVIE.axes,
        window=_modes(MOVIE_WINDOWS, mode), normalization=dict(DEFAULT_NORMALIZATION),
        calibration={"pixel_um": 0.2, "dt_ms": 6.8}, name=name,
    )
