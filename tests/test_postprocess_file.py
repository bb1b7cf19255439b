"""A model directory's ``postprocess.json`` (engine/models/postprocess_file.py): round trip,
defaults when missing, one-line errors, the legacy ``hybrid.json`` key, the shipped values, and
that the engine runs with what the file says."""

from __future__ import annotations

import dataclasses
import json

import pytest

from acquisition.simulate import LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from engine.analyzer import StreamInfo
from engine.characterize import CharacterizeConfig
from engine.hybrid import HybridParams
from engine.instances import TrackerConfig
from engine.models.json_files import ModelDirError
from engine.models.model_dir import DEFAULT_ROOT, ModelDir
from engine.models.postprocess_file import POSTPROCESS_FILE, PostprocessParams
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array
from tests.fixtures_models import make_tiny_model_dir

#: the tracker constants the engine ran with before postprocess.json (engine/instances.py)
TRACKER_BEFORE = TrackerConfig(
    gap_ms=13.6, spark_min_ms=20.4, spark_min_width_um=0.6, puff_min_ms=34.0,
    wave_min_width_um=15.0, peak_min_dist_um=1.8, peak_min_dist_ms=20.0, peak_sigma_um=0.3,
    peak_sigma_ms=3.0, context_before_ms=25.0, context_after_ms=30.0, context_margin_um=2.5,
    split_off_kinds=("spark", "puff"), split_min_probability=0.8, split_dip_sd=None)
#: the 16 module constants of engine/characterize.py before postprocess.json
CHARACTERIZE_BEFORE = CharacterizeConfig(
    sigma_ms=2.0, sigma_um=0.2, band_ms=6.0, band_um=1.0, profile_sigma_ms=3.0,
    profile_sigma_um=0.15, hold_ms=4.0, movie_sigma_ms=0.0, movie_sigma_um=0.4,
    movie_band_y_um=0.4, baseline_prior_sd=0.02, baseline_ms=30.0, voigt_half_um=3.0,
    spark_fwhm_um=1.9, voigt_chi2_sd=10.0, matched_fraction=0.3)
#: split_dip_sd of each shipped model's hybrid.json before postprocess.json (None: no hybrid)
SPLIT_DIP_BEFORE = {"linescan-accurate": 5.0, "linescan-low_latency": None, "movie": 3.0}


def _tuned() -> PostprocessParams:
    return PostprocessParams(
        tracker=TrackerConfig(gap_ms=20.0, split_off_kinds=("spark",)),
        characterize=CharacterizeConfig(band_ms=8.0, movie_sigma_um=0.5),
        notes=("a note",)).with_override("hybrid", "split_dip_sd", 4.0, "cmd --x: F1 0.9")


def test_round_trip_and_overrides_apply_to_their_detector_only(tmp_path):
    params = _tuned()
    params.save(tmp_path)
    loaded = PostprocessParams.load(tmp_path)
    assert loaded == params
    assert loaded.tracker_for("hybrid").split_dip_sd == 4.0
    assert loaded.tracker_for("hybrid").gap_ms == 20.0
    assert loaded.tracker_for("network").split_dip_sd is None
    assert loaded.provenance == {"tracker_overrides.hybrid.split_dip_sd": "cmd --x: F1 0.9"}
    assert json.loads((tmp_path / POSTPROCESS_FILE).read_text())["schema_version"] == 1


def test_missing_file_section_or_field_is_the_code_default(tmp_path):
    assert PostprocessParams.load(tmp_path) == PostprocessParams()
    assert PostprocessParams().tracker == TRACKER_BEFORE
    assert PostprocessParams().characterize == CHARACTERIZE_BEFORE
    (tmp_path / POSTPROCESS_FILE).write_text(json.dumps({"tracker": {"gap_ms": 7.0}}))
    partial = PostprocessParams.load(tmp_path)
    assert partial.tracker.gap_ms == 7.0 and partial.tracker.puff_min_ms == 34.0
    assert partial.characterize == CHARACTERIZE_BEFORE


@pytest.mark.parametrize("content, key", [
    ({"trackr": {}}, "'trackr'"),
    ({"tracker": {"gap_mss": 1.0}}, "'tracker.gap_mss'"),
    ({"characterize": {"sigma": 1.0}}, "'characterize.sigma'"),
    ({"tracker_overrides": {"unet": {"gap_ms": 1.0}}}, "'tracker_overrides.unet'"),
    ({"tracker_overrides": {"hybrid": {"split_dip": 3}}}, "'tracker_overrides.hybrid.split_dip'"),
    ({"tracker": {"gap_ms": "13.6"}}, "tracker.gap_ms must be a number"),
    ({"tracker": {"split_off_kinds": ["spark", "ember"]}}, "tracker.split_off_kinds"),
    ({"characterize": {"band_ms": None}}, "characterize.band_ms must be a number"),
    ({"schema_version": 2}, "schema_version 2"),
])
def test_bad_content_is_a_one_line_error_naming_the_file_and_key(tmp_path, content, key):
    (tmp_path / POSTPROCESS_FILE).write_text(json.dumps(content))
    with pytest.raises(ModelDirError) as error:
        PostprocessParams.load(tmp_path)
    message = str(error.value)
    assert str(tmp_path / POSTPROCESS_FILE) in message and key in message
    assert "\n" not in message


def test_legacy_hybrid_json_split_dip_sd_is_still_read(tmp_path):
    (tmp_path / "hybrid.json").write_text(json.dumps({"schema_version": 1, "split_dip_sd": 5.0}))
    assert HybridParams.load(tmp_path) == HybridParams()  # the key no longer belongs there
    assert PostprocessParams.load(tmp_path).tracker_for("hybrid").split_dip_sd == 5.0
    PostprocessParams().save(tmp_path)  # both: ambiguous, refused
    with pytest.raises(ModelDirError, match="split_dip_sd belongs in"):
        PostprocessParams.load(tmp_path)


@pytest.mark.parametrize("name", sorted(SPLIT_DIP_BEFORE))
def test_shipped_postprocess_json_holds_the_values_the_engine_ran_with(name):
    """Regression guard: every shipped model directory reproduces the constants it ran with
    before ``postprocess.json`` existed, and every value tuned for it names its command."""
    params = PostprocessParams.load(DEFAULT_ROOT / name)
    assert (DEFAULT_ROOT / name / POSTPROCESS_FILE).is_file()
    assert params.tracker == TRACKER_BEFORE
    tuned = {key.split(".", 1)[1]: text for key, text in params.provenance.items()
             if key.startswith("characterize.")}
    for text in tuned.values():  # a characterization value tuned for this model names its command
        assert text.startswith(("python -m ", "castream ")), text
    before = dataclasses.replace(CHARACTERIZE_BEFORE, **{
        field: getattr(params.characterize, field) for field in tuned})
    assert params.characterize == before
    network = params.tracker_for("network")  # as before, but for values tuned with a command
    tuned_network = [key.rsplit(".", 1)[1] for key in params.provenance
                     if key.startswith("tracker_overrides.network.")]
    assert network == dataclasses.replace(TRACKER_BEFORE, **{
        field: getattr(network, field) for field in tuned_network})
    assert params.tracker_for("hybrid").split_dip_sd == SPLIT_DIP_BEFORE[name]
    for detector, values in params.tracker_overrides.items():
        for field in values:
            text = params.provenance[f"tracker_overrides.{detector}.{field}"]
            assert text.startswith(("python -m ", "castream ")), text
    assert "split_dip_sd" not in json.loads((DEFAULT_ROOT / name / "hybrid.json").read_text()
                                            if (DEFAULT_ROOT / name / "hybrid.json").is_file()
                                            else "{}")


def test_model_dir_reads_but_never_writes_postprocess_json(tmp_path):
    path = make_tiny_model_dir(tmp_path / "m", ndim=2)
    assert not (path / POSTPROCESS_FILE).exists()
    assert ModelDir.load(path, check_weights=False).postprocess == PostprocessParams()
    _tuned().save(path)
    model = ModelDir.load(path, check_weights=False)
    assert model.postprocess == _tuned()
    model.save(path)  # as `castream train` does: the tuned file stays
    assert PostprocessParams.load(path) == _tuned()


def test_detectors_carry_the_model_directory_parameters(tmp_path):
    path = make_tiny_model_dir(tmp_path / "m", ndim=2)
    _tuned().save(path)
    info = StreamInfo("s", StreamKind.LINESCAN, (64,), 0.2, 1.5)
    made = {name: DetectorFactory(EngineConfig(model=path, backend="torch", detector=name))
            .detector(info) for name in ("network", "hybrid", "classical")}
    assert made["network"].tracker_config == _tuned().tracker
    assert made["hybrid"].tracker_config == _tuned().tracker_for("hybrid")
    assert made["hybrid"].characterize_config.band_ms == 8.0
    assert made["classical"].tracker_config == TRACKER_BEFORE  # no model directory: defaults
    given = PostprocessParams(tracker=TrackerConfig(gap_ms=3.0))
    override = DetectorFactory(EngineConfig(model=path, backend="torch", detector="hybrid",
                                            postprocess=given)).detector(info)
    assert override.tracker_config == given.tracker
    with pytest.raises(ValueError, match="postprocess.json parameter"):
        EngineConfig(thresholds={"split_dip_sd": 5.0})


def test_the_analyzer_tracks_and_characterizes_with_the_given_parameters():
    rec = simulate_linescan(LinescanParams(n_lines=1000, n_pixels=128), seed=4)

    def events(params: PostprocessParams) -> list:
        return analyze_array(rec.data, StreamKind.LINESCAN, rec.pixel_um, rec.dt_ms, blank=rec.blank,
                             detector="classical", postprocess=params).events

    default = events(PostprocessParams())
    wide = events(PostprocessParams(characterize=CharacterizeConfig(voigt_chi2_sd=0.0,
                                                                    band_ms=30.0)))
    assert len(default) == len(wide) > 0
    assert [e.fwhm_um for e in default] != [e.fwhm_um for e in wide]
    long_only = events(PostprocessParams(tracker=TrackerConfig(spark_min_ms=1000.0)))
    assert not [e for e in long_only if e.kind == "spark"]
    assert [e for e in default if e.kind == "spark"]
