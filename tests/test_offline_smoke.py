"""Smoke test: train a tiny line-scan model for a few steps on simulated data, export it to ONNX
and evaluate it through the streaming engine (fast; part of the default suite)."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")


def _tiny_config(tmp_path):
    cfg = {
        "name": "tiny", "kind": "linescan", "mode": "accurate", "seed": 3,
        "out": str(tmp_path / "model"),
        "model": {"architecture": {"ndim": 2, "depth": 2, "base_channels": 4, "norm": "batch"},
                  "window": {"accurate": {"frames": 64, "hop": 32, "margin_left": 16,
                                          "margin_right": 16}},
                  "normalization": {"input": "dff0", "clip": [-2.0, 10.0]},
                  "calibration": {"pixel_um": 0.14, "dt_ms": 1.5}},
        "simulation": {"params": {"duration_s": 1.0, "n_pixels": 256}},
        "augmentation": {"enabled": True},
        "training": {"steps": 4, "batch_size": 2, "crop": [64], "windows_per_recording": 2,
                     "pool_recordings": 1, "log_every": 2, "checkpoint_every": 2,
                     "warmup_steps": 1, "threads": 1},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return path


def test_train_resume_export_evaluate(tmp_path):
    from offline import train

    config = _tiny_config(tmp_path)
    out = train.train(config, steps=2)
    first = (out / "weights.safetensors").read_bytes()
    out = train.train(config, resume=True)  # continues to the config's 4 steps
    log = json.loads((out / "training" / "log.json").read_text())
    assert [row["step"] for row in log] == [2, 4]
    assert (out / "training" / "log.csv").exists()
    assert (out / "weights.safetensors").read_bytes() != first
    assert json.loads((out / "metrics.json").read_text())["training"]["steps"] == 4

    from offline.export import export_onnx

    report = export_onnx(out)
    assert report["passed"] and (out / "model.onnx").exists()

    pytest.importorskip("engine.pipeline")
    from offline.datasets import SimulatedSource
    from offline.evaluate import evaluate, format_tables

    recs = SimulatedSource("linescan", split="test", seed=3,
                           params={"duration_s": 1.0, "n_pixels": 256}).take(1)
    result = evaluate(recs, out, progress=False)
    assert result.n_recordings == 1
    assert "Table 3" in format_tables(result)


def test_training_is_deterministic(tmp_path):
    from offline import train

    config = _tiny_config(tmp_path)
    a = train.train(config, out_dir=tmp_path / "a", steps=2)
    b = train.train(config, out_dir=tmp_path / "b", steps=2)
    assert (a / "weights.safetensors").read_bytes() == (b / "weights.safetensors").read_bytes()


def test_windows_are_split_by_recording():
    from offline.datasets import SimulatedSource

    train_rec = SimulatedSource("linescan", "train", seed=0, params={"duration_s": 0.3}).recording(0)
    test_rec = SimulatedSource("linescan", "test", seed=0, params={"duration_s": 0.3}).recording(0)
    assert train_rec.name != test_rec.name
    assert not np.array_equal(train_rec.data, test_rec.data)
