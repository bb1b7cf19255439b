"""Model directory: round trip, clear errors, default model lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_models import make_tiny_model_dir

from acquisition.stream_kind import StreamKind
from engine.models import (
    ModelDir,
    ModelDirError,
    default_linescan_config,
    default_model_path,
    default_movie_config,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("ndim", [2, 3])
def test_round_trip(tmp_path: Path, ndim: int) -> None:
    path = make_tiny_model_dir(tmp_path / "a", ndim, seed=3)
    model = ModelDir.load(path)
    assert model.config.stream_kind is (StreamKind.LINESCAN if ndim == 2 else StreamKind.MOVIE)
    assert model.config.geometry("low_latency").margin_right == 2
    assert model.thresholds["foreground"] == 0.5
    copy = ModelDir.load(model.save(tmp_path / "b"))
    assert copy.config == model.config and copy.thresholds == model.thresholds
    assert set(copy.weights) == set(model.weights)
    for key, value in model.weights.items():
        np.testing.assert_array_equal(copy.weights[key], value)
    net = copy.build_network()
    assert not net.training


def test_from_network(tmp_path: Path) -> None:
    from engine.models.unet import UNet

    config = default_linescan_config("low_latency")
    model = ModelDir.from_network(UNet(config.architecture), config, {"foreground": 0.4})
    loaded = ModelDir.load(model.save(tmp_path / "m"))
    assert list(loaded.config.window) == ["low_latency"]
    assert default_movie_config(None).window.keys() == {"accurate", "low_latency"}


@pytest.mark.parametrize("missing", ["config.json", "weights.safetensors", "thresholds.json"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2)
    (path / missing).unlink()
    with pytest.raises(ModelDirError, match=f"lacks {missing}"):
        ModelDir.load(path)


def _edit_config(path: Path, **changes) -> None:
    data = json.loads((path / "config.json").read_text())
    data.update(changes)
    (path / "config.json").write_text(json.dumps(data))


def test_bad_schema_and_content(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2)
    with pytest.raises(ModelDirError, match="does not exist"):
        ModelDir.load(tmp_path / "nope")
    _edit_config(path, schema_version=99)
    with pytest.raises(ModelDirError, match="schema_version 99"):
        ModelDir.load(path)
    _edit_config(path, schema_version=1, axes="TYX")
    with pytest.raises(ModelDirError, match="ndim"):
        ModelDir.load(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="not valid JSON"):
        ModelDir.load(path)


def test_shape_mismatch_and_corrupt_weights(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2)
    data = json.loads((path / "config.json").read_text())
    data["architecture"]["base_channels"] = 6
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelDirError, match="weights do not match"):
        ModelDir.load(path)
    (path / "weights.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelDirError, match="safetensors"):
        ModelDir.load(path, check_weights=False)


def test_bad_thresholds_and_missing_mode(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2, modes=("accurate",))
    model = ModelDir.load(path)
    with pytest.raises(ModelDirError, match="no 'low_latency'"):
        model.config.geometry("low_latency")
    (path / "thresholds.json").write_text(json.dumps({"foreground": 1.5}))
    with pytest.raises(ModelDirError, match="probability"):
        ModelDir.load(path)
    (path / "thresholds.json").write_text(json.dumps({"spark": 0.5}))
    with pytest.raises(ModelDirError, match="foreground"):
        ModelDir.load(path)
    (path / "thresholds.json").write_text(json.dumps({"foreground": 0.5,
                                                      "resting_baseline": "yes"}))
    with pytest.raises(ModelDirError, match="resting_baseline must be true or false"):
        ModelDir.load(path)
    (path / "thresholds.json").write_text(json.dumps({"foreground": 0.5,
                                                      "resting_baseline": True}))
    assert ModelDir.load(path).thresholds["resting_baseline"] is True


def test_default_model_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="castream train"):
        default_model_path(StreamKind.LINESCAN, "accurate", root=tmp_path)
    make_tiny_model_dir(tmp_path / "movie", 3)  # one dir carrying both modes
    make_tiny_model_dir(tmp_path / "linescan-low_latency", 2, modes=("low_latency",))
    assert default_model_path(StreamKind.MOVIE, "low_latency", root=tmp_path) == tmp_path / "movie"
    assert (default_model_path(StreamKind.LINESCAN, "low_latency", root=tmp_path).name
            == "linescan-low_latency")
    with pytest.raises(FileNotFoundError):
        default_model_path(StreamKind.LINESCAN, "accurate", root=tmp_path)
    with pytest.raises(ValueError, match="no event model"):
        default_model_path(StreamKind.IMAGE)


def test_preprocess_options_validated(tmp_path: Path) -> None:
    path = make_tiny_model_dir(tmp_path / "m", 2)
    _edit_config(path, preprocess={"baseline_window_ms": 1000.0})
    assert ModelDir.load(path).config.preprocess == {"baseline_window_ms": 1000.0}
    _edit_config(path, preprocess={"window_ms": 1000.0})
    with pytest.raises(ModelDirError, match="unknown preprocess options"):
        ModelDir.load(path)
