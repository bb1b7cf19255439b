"""Smoke test: train a tiny line-scan model for a few steps on simulated data, export it to ONNX
and evaluate it through the streaming engine (fast; part of the default suite)."""

import json
from pathlib import Path

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

    from offline.datasets import SimulatedSource
    from offline.evaluate import evaluate
    from offline.evaluate_report import format_tables

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


def test_fine_tuning_starts_from_a_model_directory(tmp_path):
    """``training.init_from``: zero steps from a trained model give back its weights; a model
    of another architecture is refused with the weight that differs."""
    from safetensors.numpy import load_file

    from engine.models.json_files import ModelDirError
    from offline import train

    config = _tiny_config(tmp_path)
    start = train.train(config, out_dir=tmp_path / "start", steps=2)
    raw = json.loads(config.read_text())
    raw["training"]["init_from"] = str(start)
    tuned_config = tmp_path / "tuned.json"
    tuned_config.write_text(json.dumps(raw))
    tuned = train.train(tuned_config, out_dir=tmp_path / "tuned", steps=0)
    a, b = load_file(str(start / "weights.safetensors")), load_file(str(tuned / "weights.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    fresh = train.train(config, out_dir=tmp_path / "fresh", steps=0)
    c = load_file(str(fresh / "weights.safetensors"))
    assert any(not np.array_equal(a[k], c[k]) for k in a)  # the start was not the seed's init
    assert json.loads((tuned / "config.json").read_text())["extra"]["trained_by"]["init_from"] == str(start)

    raw["model"]["architecture"]["base_channels"] = 8
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="does not fit this architecture"):
        train.train(wider, out_dir=tmp_path / "wider", steps=0)
    raw["training"]["init_from"] = str(tmp_path / "nowhere")
    wider.write_text(json.dumps(raw))
    with pytest.raises(ModelDirError, match="does not exist"):
        train.train(wider, out_dir=tmp_path / "nowhere_out", steps=0)


def test_a_student_learns_from_a_teacher(tmp_path):
    """``training.distillation``: a narrower student trains against a teacher model directory
    (its record says which), the loss moves, and a bad weight is refused."""
    from offline import train

    config = _tiny_config(tmp_path)
    teacher = train.train(config, out_dir=tmp_path / "teacher", steps=2)
    raw = json.loads(config.read_text())
    raw["model"]["architecture"]["base_channels"] = 2
    raw["training"]["distillation"] = {"teacher": str(teacher), "weight": 0.7}
    student_config = tmp_path / "student.json"
    student_config.write_text(json.dumps(raw))
    student = train.train(student_config, out_dir=tmp_path / "student", steps=4)
    record = json.loads((student / "config.json").read_text())["extra"]["trained_by"]
    assert record["distillation"] == {"teacher": str(teacher), "weight": 0.7}
    log = json.loads((student / "training" / "log.json").read_text())
    assert len(log) == 2 and all(np.isfinite(row["loss"]) and row["loss"] > 0 for row in log)

    raw["training"]["distillation"]["weight"] = 1.5
    student_config.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="weight must lie in"):
        train.train(student_config, out_dir=tmp_path / "bad", steps=1)
    movie = Path(__file__).resolve().parents[1] / "engine/models/default/movie"
    raw["training"]["distillation"] = {"teacher": str(movie)}
    student_config.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="has 3-D input and 4 classes, the student 2-D"):
        train.train(student_config, out_dir=tmp_path / "movie_teacher", steps=1)


def test_windows_are_split_by_recording():
    from offline.datasets import SimulatedSource

    train_rec = SimulatedSource("linescan", "train", seed=0, params={"duration_s": 0.3}).recording(0)
    test_rec = SimulatedSource("linescan", "test", seed=0, params={"duration_s": 0.3}).recording(0)
    assert train_rec.name != test_rec.name
    assert not np.array_equal(train_rec.data, test_rec.data)


def _write_dotti_folder(folder, n, seed=0):
    """``n`` simulated line-scans written in Dotti et al.'s folder convention."""
    import tifffile

    from acquisition.simulate import LinescanParams, simulate_linescan

    folder.mkdir()
    for i in range(n):
        rec = simulate_linescan(LinescanParams(duration_s=1.0, n_pixels=256), seed=seed + i)
        tifffile.imwrite(folder / f"{i:02d}_video.tif", rec.data)
        tifffile.imwrite(folder / f"{i:02d}_class_label.tif", rec.class_mask)
        tifffile.imwrite(folder / f"{i:02d}_event_label.tif", rec.instance_mask)


def test_train_on_a_labs_folder_split_by_recording(tmp_path):
    """A lab retrains with one command on its own Dotti-convention folder: recordings are split
    train/val by recording, and the trained model evaluates through the engine on the folder."""
    from offline import datasets, train
    from offline.evaluate import evaluate

    folder = tmp_path / "lab"
    _write_dotti_folder(folder, 5)
    tr = datasets.FolderSource(folder, "train", seed=3, pixel_um=0.14, dt_ms=1.5)
    va = datasets.FolderSource(folder, "val", seed=3, pixel_um=0.14, dt_ms=1.5)
    assert len(tr.recordings) == 4 and len(va.recordings) == 1
    assert not {r.name for r in tr.recordings} & {r.name for r in va.recordings}
    assert {tr.recording(i).name for i in range(4)} == {r.name for r in tr.recordings}
    assert tr.recordings[0].axes == "TX" and tr.recordings[0].dt_ms == 1.5

    config = _tiny_config(tmp_path)
    raw = json.loads(config.read_text())
    raw["data"] = {"pixel_um": 0.14, "dt_ms": 1.5}
    config.write_text(json.dumps(raw))
    out = train.train(config, steps=2, data=folder)
    assert (out / "weights.safetensors").exists()
    result = evaluate(va.recordings, out, mode="accurate", progress=False)
    assert result.n_recordings == 1 and "spark" in result.scores


def test_folder_errors_are_specific(tmp_path):
    import tifffile

    from offline import datasets, train

    with pytest.raises(FileNotFoundError, match="NN_video.tif"):
        datasets.load_recordings(tmp_path)
    tifffile.imwrite(tmp_path / "01_video.tif", np.zeros((8, 16), np.uint16))
    with pytest.raises(FileNotFoundError, match="01_class_label.tif"):
        datasets.load_recordings(tmp_path)
    tifffile.imwrite(tmp_path / "01_class_label.tif", np.zeros((8, 15), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        datasets.load_recordings(tmp_path)
    folder = tmp_path / "movies"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"{i:02d}_video.tif", np.zeros((8, 4, 16), np.uint16))
        tifffile.imwrite(folder / f"{i:02d}_class_label.tif", np.zeros((8, 4, 16), np.uint8))
    cfg = train.TrainConfig.load(_tiny_config(tmp_path))
    cfg.data = {"folder": str(folder)}
    with pytest.raises(ValueError, match="linescan model"):
        train.training_source(cfg)
