"""``castream evaluate CELLS_MODEL cells:SPLIT[:N]`` (issue 13): the tables of
``train-cells --evaluate-only`` on held-out simulated fields, and one-line errors when a cells
model meets Ca²⁺ data or a Ca²⁺ model meets ``cells:`` data."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.cells.model import DEFAULT_CELLS_MODEL
from engine.cli import main
from engine.models.model_dir import DEFAULT_ROOT
from offline.cellstruct.evaluate import markdown
from offline.commands.evaluate import CELLS_FIELDS, parse_cells_spec

CELLS = str(DEFAULT_CELLS_MODEL)
MOVIE = str(DEFAULT_ROOT / "movie")


def _error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_cells_model_on_calcium_data_is_one_clear_line(caplog, capsys) -> None:
    assert main(["evaluate", CELLS, "sim:movie:1"]) == 1
    [line] = _error_lines(caplog)
    assert line.startswith(f"{CELLS} is a cells model (structure images); evaluate it on "
                           "cells:test[:N]")
    assert "cells:variant[:N]" in line and "architecture" not in line
    assert capsys.readouterr().out == ""  # no table


@pytest.mark.parametrize("model", [MOVIE, str(DEFAULT_ROOT / "linescan-accurate")])
def test_calcium_model_on_cells_data_is_one_clear_line(model, caplog) -> None:
    assert main(["evaluate", model, "cells:test:1"]) == 1
    [line] = _error_lines(caplog)
    assert line.startswith(f"{model} is a Ca²⁺ model") and "cells model directory" in line


@pytest.mark.parametrize("argv, message", [
    (["cells:train:2"], "unknown cells data 'cells:train:2'"),
    (["cells:test:0"], "N must be a positive number"),
    (["cells:test:x"], "N must be a positive number"),
    (["cells:test:2", "--seed", "3"], "--seed applies only to Ca²⁺ data"),
    (["cells:test:2", "--sim", "pixel_um=0.2", "--tune", "4"], "--tune, --sim apply only"),
])
def test_bad_cells_arguments_are_one_line(argv, message, caplog) -> None:
    assert main(["evaluate", CELLS, *argv]) == 1
    [line] = _error_lines(caplog)
    assert message in line


def test_cells_spec_parsing() -> None:
    assert parse_cells_spec("cells:test") == ("test", CELLS_FIELDS) == ("test", 60)
    assert parse_cells_spec("cells:variant:3") == ("variant", 3)
    assert parse_cells_spec("cells:select:12") == ("select", 12)
    for bad in ("cells:", "cells:val:2", "cells:test:2:1", "cells:test:-1"):
        with pytest.raises(ValueError):
            parse_cells_spec(bad)


def test_packaged_model_on_two_test_fields(tmp_path, capsys) -> None:
    """Two held-out test fields (seconds): the printed tables are report.md's and
    metrics.json's, the figure is written, and no baseline is shown unless asked."""
    report = tmp_path / "report"
    assert main(["evaluate", CELLS, "cells:test:2", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((report / "metrics.json").read_text())
    [result] = metrics["results"]
    assert result["data"] == "test (2 fields)" and metrics["splits"] == {"test": 2}
    curation = result["curation"]["model"]
    assert curation["n_fields"] == 2 and curation["n_true_cells"] >= 2
    assert "baseline_mask_statistics" not in result["curation"]
    assert "baseline_ridge" not in result["structure_score"]
    assert -1 <= result["structure_score"]["model"]["spearman"] <= 1
    tables = markdown([result])
    assert tables in out and tables in (report / "report.md").read_text()
    assert "| curator CNN |" in out and "| structure model |" in out and "Baselines not" in out
    assert "mask-statistics logistic" not in out
    assert (report / "cells_test.png").stat().st_size > 10_000


@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
def test_default_means_the_packaged_cells_model(capsys) -> None:
    assert main(["evaluate", "default", "cells:select:1"]) == 0
    out = capsys.readouterr().out
    assert f"cells model {CELLS} on cells:select:1" in out and "### select (1 fields)" in out


def test_evaluate_equals_train_cells_evaluate_only(tmp_path, capsys) -> None:
    """With baselines on 8 training and 4 validation fields, ``evaluate`` prints the variant
    table that ``train-cells --evaluate-only`` writes for the same fields: one shared code
    path, the model's training rendering for the baselines (about 20 s)."""
    copy = tmp_path / "model"
    shutil.copytree(CELLS, copy)
    cache = tmp_path / "cache"
    assert main(["evaluate", str(copy), "cells:variant:2", "--baseline-fields", "8", "4",
                 "--cache", str(cache), "--report", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "| mask-statistics logistic |" in out and "| ridge baseline |" in out
    assert main(["train-cells", "--evaluate-only", "--out", str(copy), "--force",
                 "--randomize-rendering", "all", "--fields", "8", "4", "2", "2",
                 "--report-splits", "variant", "--workers", "1", "--cache", str(cache)]) == 0
    trained = json.loads((copy / "metrics.json").read_text())["results"]
    evaluated = json.loads((tmp_path / "report" / "metrics.json").read_text())["results"]
    assert evaluated == trained
    assert markdown(trained) in out


def test_crop_cnn_model_scores_its_patches_without_a_cache(tmp_path) -> None:
    """A crop-CNN directory (tiny, untrained) needs the true cells' patches: without --cache
    they are built in a temporary folder, and every matched cell is scored."""
    import torch

    from engine.cells.model import CellsModel, build_network, weights_of
    from tests.cells_models import tiny_cells_config

    torch.manual_seed(0)
    config = tiny_cells_config({"kind": "crop_cnn", "hidden": 8, "channels": [4, 8],
                                "members": 2, "patches": {"patch_px": 24,
                                                          "patch_pixel_um": 0.2,
                                                          "n_patches": 3}},
                               patterns={"width": 4})
    nets = {name: build_network(config, name) for name in ("curator", "structure", "patterns")}
    path = CellsModel(config, weights_of(nets), {"is_cell": 0.0}).save(tmp_path / "crop")
    report = tmp_path / "report"
    assert main(["evaluate", str(path), "cells:test:1", "--report", str(report)]) == 0
    [result] = json.loads((report / "metrics.json").read_text())["results"]
    matched = result["curation"]["model"]["n_true_candidates"]
    assert matched >= 1 and result["structure_score"]["model"]["n"] == matched
    assert sorted(p.name for p in report.iterdir()) == ["cells_test.png", "metrics.json",
                                                         "report.md"]
