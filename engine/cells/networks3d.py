"""The AMES-style 3-D head on z-stack patches (torch; imported only when one is built).

:class:`StackScorer`: a small residual 3-D CNN (:class:`StackEncoder`, hand-written
``Conv3d`` blocks: :class:`engine.cells.networks.ResidualBlock` in 3-D) on each of a cell's fixed-µm z-stack patches
(:func:`engine.cells.zpatches.stack_patches`, ``(B, K, 2, Z, P, P)``: image and mask through
the planes), the mean and SD of its patch embeddings, optionally concatenated with an MLP on
the cell's standardized ROI features (measured on the maximum projection), → the structure
score (``1 + 4·sigmoid``) and the logits of AMES's three labels: sarcomerisation (4),
directionality (4) and cell source (3).
"""

from __future__ import annotations

import torch
from torch import nn

from .networks import ResidualBlock


class StackEncoder(nn.Module):
    """``(N, C, Z, P, P)`` → ``(N, channels[-1])``: a 3×3×3 stem at stride (1, 2, 2), then
    residual blocks at stride (1, 2, 2) and, last, (2, 2, 2); global average pool."""

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32), in_channels: int = 2) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"a stack encoder needs at least 2 channel widths, got {channels}")
        layers: list[nn.Module] = [
            nn.Conv3d(in_channels, channels[0], 3, (1, 2, 2), 1, bias=False),
            nn.BatchNorm3d(channels[0]), nn.ReLU(inplace=True)]
        pairs = list(zip(channels[:-1], channels[1:], strict=True))
        for j, (c_in, c_out) in enumerate(pairs):
            stride = (2, 2, 2) if j == len(pairs) - 1 else (1, 2, 2)
            layers.append(ResidualBlock(c_in, c_out, stride, ndim=3))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.width = channels[-1]

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.body(patches)


class StackScorer(nn.Module):
    """3-D patch CNN (⊕ feature MLP when ``n_features > 0``) → score and class logits."""

    def __init__(self, n_features: int, channels: tuple[int, ...] = (8, 16, 32),
                 hidden: int = 64, n_sarcomerisation: int = 4, n_directionality: int = 4,
                 n_sources: int = 3) -> None:
        super().__init__()
        self.encoder = StackEncoder(channels)
        self.n_features = n_features
        self.features = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(inplace=True)) \
            if n_features else None
        width = 2 * self.encoder.width + (hidden if n_features else 0)
        self.trunk = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True),
                                   nn.Dropout(0.1))
        self.score = nn.Linear(hidden, 1)
        self.sarcomerisation = nn.Linear(hidden, n_sarcomerisation)
        self.directionality = nn.Linear(hidden, n_directionality)
        self.cell_source = nn.Linear(hidden, n_sources)

    def forward(self, patches: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``patches`` ``(B, K, C, Z, P, P)``; ``features`` ``(B, F)`` standardized (ignored,
        and may be ``(B, 0)``, without a feature branch)."""
        if patches.ndim != 6:
            raise ValueError(f"stack patches must be (B, K, C, Z, P, P); got {tuple(patches.shape)}")
        n_cells, n_patches = patches.shape[:2]
        embedded = self.encoder(patches.flatten(0, 1)).view(n_cells, n_patches, -1)
        parts = [embedded.mean(1), embedded.std(1, unbiased=False)]
        if self.features is not None:
            parts.append(self.features(features))
        h = self.trunk(torch.cat(parts, dim=1))
        return {"structure_score": 1 + 4 * torch.sigmoid(self.score(h).squeeze(1)),
                "sarcomerisation": self.sarcomerisation(h),
                "directionality": self.directionality(h), "cell_source": self.cell_source(h)}
