"""UNet shapes, odd sizes, anisotropic pooling and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models.architecture import UNetConfig
from engine.models.defaults import default_linescan_architecture, default_movie_architecture
from engine.models.unet import UNet, dotti_unet

torch.set_num_threads(1)


@pytest.mark.parametrize(("kwargs", "shape"), [
    ({"ndim": 2, "depth": 3, "base_channels": 4}, (2, 1, 37, 50)),
    ({"ndim": 2, "depth": 2, "base_channels": 4, "residual": True, "norm": "group"}, (1, 1, 16, 16)),
    ({"ndim": 3, "depth": 3, "base_channels": 4, "pools": ((1, 2, 2), (2, 2, 2))}, (1, 1, 9, 13, 22)),
    ({"ndim": 3, "depth": 2, "base_channels": 4, "stem_stride": (1, 2, 2), "factorized": True},
     (2, 1, 8, 16, 24)),
])
def test_output_shape_matches_input(kwargs: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = UNet(UNetConfig(**kwargs)).eval()
    with torch.inference_mode():
        out = net(torch.randn(shape))
    assert out.shape == (shape[0], 4, *shape[2:])
    assert torch.isfinite(out).all()


def test_padding_is_crop_consistent() -> None:
    """An odd-sized input gives the same logits as its replicate-padded version, cropped."""
    torch.manual_seed(0)
    net = UNet(2, depth=3, base_channels=4).eval()
    x = torch.randn(1, 1, 13, 21)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="replicate")
    with torch.inference_mode():
        np.testing.assert_allclose(net(x), net(padded)[..., :13, :21], atol=1e-6)


def test_config_round_trip_and_errors() -> None:
    cfg = default_movie_architecture()
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.size_multiple() == (8, 16, 16)
    assert default_linescan_architecture().size_multiple() == (8, 8)
    with pytest.raises(ValueError, match="ndim"):
        UNetConfig(ndim=4)
    with pytest.raises(ValueError, match="pools"):
        UNetConfig(ndim=2, depth=3, pools=((2, 2),))
    with pytest.raises(ValueError, match="unknown architecture keys"):
        UNetConfig.from_dict({"ndim": 2, "bogus": 1})


def test_dotti_config() -> None:
    net = dotti_unet()
    assert net.config.depth == 6 and net.config.base_channels == 8 and net.config.ndim == 3
    assert net.size_multiple() == (32, 32, 32)


def test_onnx_export_dynamic_batch(tmp_path) -> None:
    import onnxruntime as ort
    from fixtures_models import make_tiny_model_dir

    from engine.models.model_dir import ModelDir, export_onnx

    model = ModelDir.load(make_tiny_model_dir(tmp_path / "m", 2))
    path = export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, t in ((1, 16), (3, 32)):
        x = np.random.default_rng(batch).normal(size=(batch, 1, t, 24)).astype(np.float32)
        probs = session.run(None, {"input": x})[0]
        assert probs.shape == (batch, 4, t, 24)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
