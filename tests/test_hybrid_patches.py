"""The hybrid.json patches of offline.experiments.hybrid_patches: merged into a copy, the
model directory itself untouched."""

from __future__ import annotations

import json
from pathlib import Path

from offline.experiments.hybrid_patches import patched


def test_patch_merges_classical_keys_into_a_copy(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    original = {"min_significance": 7.0, "classical": {"k_detect": 6.0, "k_grow": 4.5}}
    (model / "hybrid.json").write_text(json.dumps(original))
    (model / "config.json").write_text("{}")
    copy = patched(model, {"classical": {"wave_spread_ms": 30}, "network_spark_share": 0.8},
                   tmp_path / "variants", "v0")
    got = json.loads((copy / "hybrid.json").read_text())
    assert got == {"min_significance": 7.0, "network_spark_share": 0.8,
                   "classical": {"k_detect": 6.0, "k_grow": 4.5, "wave_spread_ms": 30}}
    assert (copy / "config.json").exists()
    assert json.loads((model / "hybrid.json").read_text()) == original
    (model / "postprocess.json").write_text(json.dumps(
        {"tracker": {"gap_ms": 13.6}, "tracker_overrides": {"hybrid": {"split_dip_sd": 3.0}}}))
    tracked = patched(model, {"tracker": {"split_min_probability": 0.5}}, tmp_path / "variants",
                      "v2")
    assert json.loads((tracked / "postprocess.json").read_text())["tracker_overrides"] == {
        "hybrid": {"split_dip_sd": 3.0, "split_min_probability": 0.5}}
    shipped = patched(model, None, tmp_path / "variants", "v1")
    assert json.loads((shipped / "hybrid.json").read_text()) == original
