"""Models: the U-Net, its torch-free description and the model directory (torch stays lazy:
``engine.models.unet`` is the only module here that imports it at import time)."""

from .architecture import UNetConfig, dotti_unet_config
from .defaults import (
    DOTTI_WINDOW,
    default_linescan_config,
    default_movie_config,
)
from .model_dir import (
    ModelConfig,
    ModelDir,
    ModelDirError,
    default_model_path,
    export_onnx,
)

__all__ = [
    "DOTTI_WINDOW",
    "ModelConfig",
    "ModelDir",
    "ModelDirError",
    "UNetConfig",
    "default_linescan_config",
    "default_model_path",
    "default_movie_config",
    "dotti_unet_config",
    "export_onnx",
]
