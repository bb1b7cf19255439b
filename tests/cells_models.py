"""Tiny untrained cells models for tests (seeded, so two calls give the same weights)."""

from __future__ import annotations

from typing import Any

from engine.cells.features import CLASSICAL_FEATURES
from engine.cells.model import CellsModel, CellsModelConfig, build_network, weights_of


def tiny_cells_config(structure: dict[str, Any],
                      patterns: dict[str, Any] | None = None) -> CellsModelConfig:
    """The classical features (the first six for curation), identity normalization, a
    two-level curator on 32-px crops, the given structure network and pattern net."""
    names = list(CLASSICAL_FEATURES)
    return CellsModelConfig(
        curation_features=names[:6], structure_features=names,
        feature_mean=dict.fromkeys(names, 0.0), feature_scale=dict.fromkeys(names, 1.0),
        feature_fill={}, curator={"channels": [4, 8], "crop_px": 32, "crop_scale": 1.25,
                                  "min_side_um": 12.0},
        structure=structure, patterns=patterns)


def tiny_cells_model(structure: dict[str, Any], patterns: dict[str, Any] | None = None,
                     is_cell: float = 0.5, seed: int = 0) -> CellsModel:
    """A model of :func:`tiny_cells_config` with torch-seeded random weights."""
    import torch

    torch.manual_seed(seed)
    config = tiny_cells_config(structure, patterns)
    nets = {name: build_network(config, name) for name in ("curator", "structure", "patterns")}
    return CellsModel(config, weights_of(nets), {"is_cell": is_cell})
