"""Small torch networks of the cells model (imported only when a model is built).

* :class:`CuratorNet`: DeGuire et al.'s ROI curator — a CNN (stride-2 stem, residual blocks)
  on a 2-channel crop (image, mask) centred on the candidate, its pooled features concatenated with standardized mask/intensity
  statistics, → one logit (true cell vs not).
* :class:`StructureHeads`: an MLP on standardized ROI features → the 1–5 organisation score
  (``1 + 4·sigmoid``), sarcomerisation (4 logits), directionality (4) and cell source (3).
* :class:`HeadsEnsemble`: several :class:`StructureHeads` (or :class:`CropScorer`) trained
  from different seeds; the
  mean score and the mean class probabilities (returned as their logarithm, so a softmax
  gives them back).
* :class:`CropScorer`: the SarcNet-style scorer — a residual CNN (:class:`PatchEncoder`) on
  fixed-µm patches of the cell (mean and SD of its embeddings over the cell's patches) and an
  MLP on the same ROI features, concatenated → the same four heads, plus an auxiliary
  regression of ln(1 + the myofibril spread in degrees).
* :class:`Probabilities`: what the engine reads of the curator, the structure network or the
  pattern net, as probabilities; the torch path runs it and the ONNX graphs are its export.
"""

from __future__ import annotations

import torch
from torch import nn

from .schema import HEADS


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + (1×1 projection) skip, ReLU; stride 2 halves the size (per axis
    where ``stride`` is a tuple); ``ndim`` 3 for volumes (3×3×3 convolutions)."""

    def __init__(self, c_in: int, c_out: int, stride: int | tuple[int, ...] = 2,
                 ndim: int = 2) -> None:
        super().__init__()
        conv, norm = (nn.Conv3d, nn.BatchNorm3d) if ndim == 3 else (nn.Conv2d, nn.BatchNorm2d)
        self.body = nn.Sequential(
            conv(c_in, c_out, 3, stride, 1, bias=False), norm(c_out),
            nn.ReLU(inplace=True), conv(c_out, c_out, 3, 1, 1, bias=False), norm(c_out))
        self.skip = nn.Sequential(conv(c_in, c_out, 1, stride, bias=False), norm(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class CuratorNet(nn.Module):
    def __init__(self, n_extra: int, channels: tuple[int, ...] = (8, 16, 32),
                 in_channels: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 5, 2, 2, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
        c_in = channels[0]
        for c_out in channels[1:]:
            layers.append(ResidualBlock(c_in, c_out))
            c_in = c_out
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c_in + n_extra, 32), nn.ReLU(inplace=True),
                                  nn.Linear(32, 1))

    def forward(self, crops: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.encoder(crops), extra], dim=1)).squeeze(1)


class StructureHeads(nn.Module):
    def __init__(self, n_features: int, hidden: int = 64, n_sarcomerisation: int = 4,
                 n_directionality: int = 4, n_sources: int = 3) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(inplace=True),
                                   nn.Dropout(0.1), nn.Linear(hidden, hidden),
                                   nn.ReLU(inplace=True))
        self.score = nn.Linear(hidden, 1)
        self.sarcomerisation = nn.Linear(hidden, n_sarcomerisation)
        self.directionality = nn.Linear(hidden, n_directionality)
        self.cell_source = nn.Linear(hidden, n_sources)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(features)
        return {"structure_score": 1 + 4 * torch.sigmoid(self.score(h).squeeze(1)),
                "sarcomerisation": self.sarcomerisation(h),
                "directionality": self.directionality(h), "cell_source": self.cell_source(h)}


class HeadsEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """The members' inputs (features; or patches and features for :class:`CropScorer`)."""
        outs = [member(*inputs) for member in self.members]
        merged = {"structure_score": torch.stack([o["structure_score"] for o in outs]).mean(0)}
        for name in HEADS:
            probs = torch.stack([torch.softmax(o[name], dim=1) for o in outs]).mean(0)
            merged[name] = torch.log(probs.clamp_min(1e-12))
        return merged


class PatchEncoder(nn.Module):
    """Residual CNN on ``(N, C, P, P)`` patches → ``(N, channels[-1])`` pooled embeddings:
    a stride-1 3×3 stem (Z-discs are 1–2 px wide at 0.2 µm/px), then stride-2 residual
    blocks."""

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 48), in_channels: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers.append(ResidualBlock(c_in, c_out))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.width = channels[-1]

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.body(patches)


class CropScorer(nn.Module):
    """SarcNet-style scorer: patch CNN ⊕ feature MLP → score, class logits and
    ``spread_log`` (auxiliary: ln(1 + myofibril spread in degrees))."""

    def __init__(self, n_features: int, channels: tuple[int, ...] = (8, 16, 32, 48),
                 hidden: int = 64, n_sarcomerisation: int = 4, n_directionality: int = 4,
                 n_sources: int = 3, in_channels: int = 2) -> None:
        super().__init__()
        self.encoder = PatchEncoder(channels, in_channels)
        self.features = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(nn.Linear(2 * self.encoder.width + hidden, hidden),
                                   nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.score = nn.Linear(hidden, 1)
        self.sarcomerisation = nn.Linear(hidden, n_sarcomerisation)
        self.directionality = nn.Linear(hidden, n_directionality)
        self.cell_source = nn.Linear(hidden, n_sources)
        self.spread_log = nn.Linear(hidden, 1)

    def forward(self, patches: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``patches`` ``(B, K, C, P, P)``, ``features`` ``(B, F)`` standardized."""
        n_cells, n_patches = patches.shape[:2]
        embedded = self.encoder(patches.flatten(0, 1)).view(n_cells, n_patches, -1)
        pooled = torch.cat([embedded.mean(1), embedded.std(1, unbiased=False)], dim=1)
        h = self.trunk(torch.cat([pooled, self.features(features)], dim=1))
        return {"structure_score": 1 + 4 * torch.sigmoid(self.score(h).squeeze(1)),
                "sarcomerisation": self.sarcomerisation(h),
                "directionality": self.directionality(h), "cell_source": self.cell_source(h),
                "spread_log": self.spread_log(h).squeeze(1)}


class PatternNet(nn.Module):
    """Local pattern classifier (Gerbin et al.'s six patch classes) as a small fully
    convolutional net: a stride-2 stem then dilated 3×3 convolutions (receptive field ≈ 60
    input pixels, 6–12 µm), → per-pixel class logits at half the input resolution."""

    def __init__(self, n_classes: int = 6, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, 2, 1), nn.ReLU(inplace=True)]
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv2d(width, width, 3, 1, dilation, dilation=dilation),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, n_classes, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)


class Probabilities(nn.Module):
    """What the engine reads of a cells network, as probabilities in a tuple: the curator's
    P(true cell) (sigmoid of its logit); the structure network's score and the class
    probabilities of its heads (softmax, in :data:`HEADS` order); the pattern net's per-pixel
    class probabilities (softmax over the class axis, ``(B, classes, ⌈Y/2⌉, ⌈X/2⌉)``)."""

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net = net
        self.name = name

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(*inputs)
        if self.name == "curator":
            return (torch.sigmoid(out),)
        if self.name == "patterns":
            return (torch.softmax(out, dim=1),)
        return (out["structure_score"], *(torch.softmax(out[name], dim=1) for name in HEADS))
