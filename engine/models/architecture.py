"""Torch-free description of a :class:`engine.models.unet.UNet` (what ``config.json`` stores).

Kept apart from ``unet.py`` so that reading a model directory, computing window sizes and
padding multiples never imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`; stored as ``architecture`` in a model's config.json.

    Parameters
    ----------
    ndim : 2 for ``(T, X)`` line-scans, 3 for ``(T, Y, X)`` movies.
    depth : number of resolution levels of the U-Net (``depth - 1`` poolings).
    base_channels : channels at the first level; level ``i`` has
        ``min(base_channels * channel_growth**i, max_channels)``.
    pools : pooling factor per axis for each of the ``depth - 1`` poolings (default all 2).
    stem_stride : stride per axis of an initial downsampling convolution (default no stem).
    norm : "batch", "group" (4 channels per group) or "none".
    residual : add a 1x1 projection shortcut around each conv block.
    factorized : 3D only; (2+1)D convolutions (1x3x3 then 3x1x1) instead of 3x3x3.
    """

    ndim: int
    in_channels: int = 1
    n_classes: int = 4
    depth: int = 4
    base_channels: int = 8
    channel_growth: float = 2.0
    max_channels: int = 256
    pools: tuple[tuple[int, ...], ...] | None = None
    stem_stride: tuple[int, ...] | None = None
    convs_per_block: int = 2
    norm: str = "batch"
    residual: bool = False
    factorized: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {self.ndim}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.norm not in ("batch", "group", "none"):
            raise ValueError(f"norm must be batch|group|none, got {self.norm!r}")
        # store the resolved (explicit, tuple) form so equal architectures compare equal
        object.__setattr__(self, "pools", self.resolved_pools())
        object.__setattr__(self, "stem_stride", self.resolved_stem())
        pools = self.pools
        if len(pools) != self.depth - 1 or any(len(p) != self.ndim for p in pools):
            raise ValueError(f"pools must be {self.depth - 1} tuples of {self.ndim} ints: {pools}")
        if len(self.stem_stride) != self.ndim:
            raise ValueError(f"stem_stride must have {self.ndim} entries: {self.stem_stride}")
        if min((*self.stem_stride, *(f for p in pools for f in p)), default=1) < 1:
            raise ValueError("pooling factors and stem strides must be >= 1")

    def resolved_pools(self) -> tuple[tuple[int, ...], ...]:
        """Pooling factors per level, defaulting to 2 on every axis."""
        if self.pools is None:
            return tuple((2,) * self.ndim for _ in range(self.depth - 1))
        return tuple(tuple(int(f) for f in p) for p in self.pools)

    def resolved_stem(self) -> tuple[int, ...]:
        """Stem stride per axis (all 1 when there is no stem)."""
        return tuple(int(s) for s in (self.stem_stride or (1,) * self.ndim))

    def channels(self) -> list[int]:
        """Channels at each resolution level."""
        return [
            min(int(round(self.base_channels * self.channel_growth**i)), self.max_channels)
            for i in range(self.depth)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["pools"] = [list(p) for p in self.resolved_pools()]
        out["stem_stride"] = list(self.resolved_stem())
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown architecture keys: {sorted(unknown)}")
        kwargs = dict(data)
        if kwargs.get("pools") is not None:
            kwargs["pools"] = tuple(tuple(p) for p in kwargs["pools"])
        if kwargs.get("stem_stride") is not None:
            kwargs["stem_stride"] = tuple(kwargs["stem_stride"])
        return cls(**kwargs)

    def size_multiple(self) -> tuple[int, ...]:
        """Per-axis multiple that input sizes must have for the network to need no padding.

        The torch module pads internally; the ONNX graph (dynamic axes) requires multiples, so
        backends pad/crop with :func:`pad_to_multiple`.
        """
        total = list(self.resolved_stem())
        for pool in self.resolved_pools():
            total = [t * f for t, f in zip(total, pool, strict=True)]
        return tuple(total)


def dotti_unet_config() -> UNetConfig:
    """Dotti et al. 2024's network: 3D U-Net, 6 levels (5 poolings by 2), 8 base channels.

    They run it on 256-frame windows with hop 32; this is an approximation of the published
    configuration (plain 3x3x3 convolutions, batch norm, channels doubling per level) used for
    benchmarks and comparisons.
    """
    return UNetConfig(ndim=3, depth=6, base_channels=8, norm="batch")
