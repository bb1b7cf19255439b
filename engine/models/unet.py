"""A configurable 2D/3D U-Net for per-pixel classification of Ca2+ recordings.

Input ``(B, C, T, X)`` (line-scans, ``ndim=2``) or ``(B, C, T, Y, X)`` (movies, ``ndim=3``);
output: logits ``(B, n_classes, *same spatial size)``, classes in the order of
``acquisition.labels`` (0 background, 1 spark, 2 wave, 3 puff).

Sizes that are not multiples of the network's total stride are handled inside ``forward``: the
input is padded at the end of each axis (replicate) and the logits are cropped back, so any
window size works; windows whose size is a multiple of :meth:`UNet.size_multiple` avoid the
(small) padding cost.

Lean options for CPU real time (see ``default_linescan_config`` / ``default_movie_config``):

- ``stem_stride``: a strided first convolution that downsamples before the U-Net proper (e.g.
  ``(1, 2, 2)`` for movies: halve Y and X, keep time). The last decoder features return to full
  resolution through a learned transposed convolution and are concatenated with the
  full-resolution input before the pointwise (1x1) head, so the network is cheap at full
  resolution and still outputs per-pixel logits.
- ``pools``: per-level pooling factors per axis (anisotropic pooling, e.g. ``(1, 2, 2)``).
- ``factorized``: (2+1)D convolutions in 3D: ``1x3x3`` spatial then ``3x1x1`` temporal.

The module is ONNX-exportable (opset 17; dynamic batch and spatial axes for inputs whose sizes
are multiples of ``size_multiple()``; see ``engine.models.model_dir.export_onnx``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import UNetConfig, dotti_unet_config

__all__ = ["ConvBlock", "UNet", "UNetConfig", "dotti_unet", "dotti_unet_config"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAXPOOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _norm(ndim: int, kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return _BN[ndim](channels)
    if kind == "group":
        return nn.GroupNorm(max(1, channels // 4), channels)
    return nn.Identity()


def _conv(ndim: int, c_in: int, c_out: int, factorized: bool) -> nn.Module:
    """3x3(x3) conv, or (2+1)D: spatial 1x3x3 then temporal 3x1x1 (3D only)."""
    if ndim == 3 and factorized:
        return nn.Sequential(
            nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1), bias=False),
            nn.Conv3d(c_out, c_out, (3, 1, 1), padding=(1, 0, 0), bias=False),
        )
    return _CONV[ndim](c_in, c_out, 3, padding=1, bias=False)


def _make_stem(cfg: UNetConfig, c_out: int) -> nn.Module:
    """Strided conv (kernel ``2s-1``, output size ``ceil(n/s)``) + norm + ReLU."""
    stride = cfg.resolved_stem()
    kernel = tuple(2 * s - 1 if s > 1 else 3 for s in stride)
    pad = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        _CONV[cfg.ndim](cfg.in_channels, c_out, kernel, stride, pad, bias=False),
        _norm(cfg.ndim, cfg.norm, c_out),
        nn.ReLU(inplace=True),
    )


class ConvBlock(nn.Module):
    """``convs_per_block`` x (conv, norm, ReLU), with an optional projection shortcut."""

    def __init__(self, cfg: UNetConfig, c_in: int, c_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(cfg.convs_per_block):
            layers += [
                _conv(cfg.ndim, c_in if i == 0 else c_out, c_out, cfg.factorized),
                _norm(cfg.ndim, cfg.norm, c_out),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.shortcut = _CONV[cfg.ndim](c_in, c_out, 1, bias=False) if cfg.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out


class UNet(nn.Module):
    """U-Net over ``(T, X)`` or ``(T, Y, X)``; see the module docstring and :class:`UNetConfig`.

    ``UNet(ndim, **kwargs)`` is shorthand for ``UNet(UNetConfig(ndim, **kwargs))``.
    """

    def __init__(self, config: UNetConfig | int, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if isinstance(config, UNetConfig) else UNetConfig(ndim=config, **kwargs)
        self.config = cfg
        nd, chans = cfg.ndim, cfg.channels()
        self._stem_stride = cfg.resolved_stem()
        self._pools = cfg.resolved_pools()
        has_stem = any(s > 1 for s in self._stem_stride)
        self.stem = _make_stem(cfg, chans[0]) if has_stem else None
        first_in = chans[0] if has_stem else cfg.in_channels
        self.encoders = nn.ModuleList(
            [ConvBlock(cfg, first_in if i == 0 else chans[i - 1], chans[i]) for i in range(cfg.depth)]
        )
        self.pool_layers = nn.ModuleList([_MAXPOOL[nd](p, p) for p in self._pools])
        self.ups = nn.ModuleList(
            [_CONV_T[nd](chans[i + 1], chans[i], p, p) for i, p in enumerate(self._pools)]
        )
        self.decoders = nn.ModuleList(
            [ConvBlock(cfg, 2 * chans[i], chans[i]) for i in range(cfg.depth - 1)]
        )
        self.stem_up = (
            _CONV_T[nd](chans[0], chans[0], self._stem_stride, self._stem_stride) if has_stem else None
        )
        head_in = chans[0] + (cfg.in_channels if has_stem else 0)
        self.head = _CONV[nd](head_in, cfg.n_classes, 1)

    def size_multiple(self) -> tuple[int, ...]:
        """Per-axis multiple of input sizes that needs no internal padding."""
        return self.config.size_multiple()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = [int(s) for s in x.shape[2:]]
        multiple = self.size_multiple()
        padded = [int(math.ceil(s / m) * m) for s, m in zip(sizes, multiple, strict=True)]
        if padded != sizes:
            pad: list[int] = []
            for s, p in zip(reversed(sizes), reversed(padded), strict=True):
                pad += [0, p - s]
            x = F.pad(x, pad, mode="replicate")
        logits = self._forward_padded(x)
        if padded != sizes:
            logits = logits[(slice(None), slice(None), *[slice(0, s) for s in sizes])]
        return logits

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x) if self.stem is not None else x
        skips: list[torch.Tensor] = []
        for i, enc in enumerate(self.encoders):
            h = enc(h)
            if i < len(self.pool_layers):
                skips.append(h)
                h = self.pool_layers[i](h)
        for i in reversed(range(len(self.decoders))):
            h = self.decoders[i](torch.cat([self.ups[i](h), skips[i]], dim=1))
        if self.stem_up is not None:
            h = torch.cat([self.stem_up(h), x], dim=1)
        return self.head(h)


def dotti_unet() -> UNet:
    """A randomly initialised :func:`dotti_unet_config` network (for benchmarks)."""
    return UNet(dotti_unet_config())
