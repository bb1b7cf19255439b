"""Safe defaults for training (issue 11): a new folder unless --out names one; a packaged
model is replaced only with --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.models.model_dir import DEFAULT_ROOT
from offline.model_out import is_packaged, training_out_dir

CONFIG = str(Path(__file__).resolve().parents[1] / "offline/configs/linescan_accurate.json")
PACKAGED_FILES = sorted(p for p in DEFAULT_ROOT.rglob("*") if p.is_file())


def _mtimes() -> list[int]:
    return [p.stat().st_mtime_ns for p in PACKAGED_FILES]


def test_default_is_a_new_dated_folder(tmp_path: Path) -> None:
    first = training_out_dir(None, "linescan_accurate", root=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("linescan_accurate-")
    first.mkdir()
    second = training_out_dir(None, "linescan_accurate", root=tmp_path)
    assert second != first and not second.exists()
    assert training_out_dir(tmp_path / "mine", "x") == tmp_path / "mine"


def test_packaged_models_need_force() -> None:
    target = DEFAULT_ROOT / "linescan-accurate"
    assert is_packaged(target) and is_packaged(DEFAULT_ROOT) and not is_packaged(Path("models/x"))
    with pytest.raises(ValueError, match="packaged model.*--force"):
        training_out_dir(target, "linescan_accurate")
    assert training_out_dir(target, "linescan_accurate", force=True) == target


@pytest.mark.parametrize("argv", [
    ["train", CONFIG, "--steps", "1",
     "--out", str(DEFAULT_ROOT / "linescan-accurate")],
    ["train-classifier", "--cells", "2", "--out", str(DEFAULT_ROOT / "cell_classifier")],
    ["train-cells", "--fields", "1", "1", "1", "1", "--out", str(DEFAULT_ROOT / "cells")],
    ["train-cells", "--evaluate-only", "--fields", "1", "1", "1", "1"],
])
def test_commands_refuse_to_overwrite_a_packaged_model(argv, caplog) -> None:
    before = _mtimes()
    assert main(argv) == 1
    assert "--force" in caplog.text and "packaged model" in caplog.text
    assert _mtimes() == before


def test_an_earlier_runs_model_needs_force(tmp_path: Path, caplog) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    assert training_out_dir(mine, "x") == mine  # an empty folder is fine
    (mine / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"already holds files \(config.json\).*--force"):
        training_out_dir(mine, "x")
    assert training_out_dir(mine, "x", force=True) == mine
    assert training_out_dir(mine, "x", existing_ok=True) == mine  # --resume, --evaluate-only
    assert main(["train", CONFIG, "--steps", "1", "--out", str(mine)]) == 1
    assert "already holds files" in caplog.text
    assert (mine / "config.json").read_text() == "{}"


def test_resume_needs_out(caplog) -> None:
    assert main(["train", CONFIG, "--resume"]) == 1
    assert "--resume" in caplog.text and "--out" in caplog.text
