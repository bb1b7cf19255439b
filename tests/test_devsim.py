"""The independent development-set generator (offline.devsim): physics, optics, ground truth,
calibration ranges and its wiring into evaluation. Small, seeded recordings only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from acquisition.labels import CLASS_IDS, IGNORE
from engine.events import EVENT_COLUMNS, Event
from offline import metrics
from offline.devsim import DevSource, dev_linescan, dev_movie, generate
from offline.devsim.calibration import draw_setup
from offline.devsim.diffusion import (
    UM3_UM_PER_MS_PER_PA,
    RadialGrid,
    Release,
    SolverSettings,
    solve_release,
    spark_template,
)
from offline.devsim.generate import dev_params
from offline.devsim.kinetics import Cytosol, Pump
from offline.devsim.measure import measure_contribution
from offline.devsim.optics import ConfocalPSF, FocalBlur
from offline.devsim.params import LinescanDevParams, MovieDevParams, with_overrides
from offline.devsim.render import Contribution
from offline.devsim.schedule import focus_subtype
from offline.devsim.template_noise import SINGLE_SUBTYPES, with_template_noise

#: small, fast recordings: one second, 256-px lines, few release templates
SMALL = {"duration_s": 1.0, "n_px_choices": 256, "n_templates": 2, "ember_ms": 60.0}
BUSY = {**SMALL, "spark_rate_per_100um_s": 40.0, "pair_fraction": 0.3, "repeat_fraction": 0.3,
        "ember_fraction": 0.15, "resting_snr": 8.0}
SUBTYPES = {"in_focus", "mid_focus", "out_of_focus", "ember", "macro", "pair", "repeat", "puff",
            "wave"}


@pytest.fixture(scope="module")
def busy_linescan():
    return generate(dev_params("linescan", BUSY), seed=5)


def _linescan_view(release: Release, z_um: float, lateral_um: float = 0.0) -> np.ndarray:
    """A (T, X) line-scan of one spark: 0.5 ms lines, 0.05 µm pixels, site at x = 0."""
    template = spark_template(release)
    field = FocalBlur(ConfocalPSF(0.4, 1.6), template.r_um).observe(template.dff0, 0.5, z_um)
    x = np.arange(-80, 81) * 0.05
    t = np.arange(0, template.t_ms[-1], 0.5)
    return field.sample(np.hypot(x, lateral_um)[None, :], t[:, None])


# ----------------------------------------------------------------------------- physics


def test_release_conserves_calcium_without_pump_and_dye_stays_bounded():
    release = Release(10.0, 5.0, 4.0)
    settings = SolverSettings(tail_ms=20.0)
    no_pump = solve_release(release, Cytosol(pump=Pump(vmax_uM_per_ms=0.0)), settings)
    t = np.arange(0.0, release.active_ms + 20.0, 0.001)
    released = UM3_UM_PER_MS_PER_PA * sum(release.current_pA(v) for v in t) * 0.001
    gained = no_pump.calcium_content_uM_um3[-1] - no_pump.calcium_content_uM_um3[0]
    assert gained == pytest.approx(released, rel=0.01)
    lo, hi = no_pump.indicator_bound_range_uM
    assert 0.0 <= lo and hi <= Cytosol().indicator.buffer.total_uM
    pumped = solve_release(release, Cytosol(), settings)
    assert pumped.calcium_content_uM_um3[-1] < no_pump.calcium_content_uM_um3[-1] - 1.0


def test_blur_of_a_gaussian_blob_is_the_analytic_gaussian():
    grid = RadialGrid.build()
    psf, sigma0 = ConfocalPSF(0.4, 1.5), 0.5
    blob = np.exp(-grid.centers_um**2 / (2 * sigma0**2))[:, None]
    blur = FocalBlur(psf, grid.centers_um)
    sx2, sz2 = sigma0**2 + psf.sigma_xy_um**2, sigma0**2 + psf.sigma_z_um**2
    for z in (0.0, 1.0):
        seen = blur.observe(blob, 1.0, z).dff0[:, 0]
        expected = (sigma0**3 / (sx2 * np.sqrt(sz2)) * np.exp(-z**2 / (2 * sz2))
                    * np.exp(-blur.rho_um**2 / (2 * sx2)))
        np.testing.assert_allclose(seen, expected, atol=2e-3)


def test_amplitude_falls_and_width_grows_with_focal_distance():
    release = Release(15.0, 6.0, 10.0)
    measured = [measure_contribution(_linescan_view(release, z), 0.5, 0.05) for z in (0, 0.75, 1.5)]
    amplitudes = [m["amplitude_dff0"] for m in measured]
    widths = [m["fwhm_um"] for m in measured]
    assert amplitudes[0] > amplitudes[1] > amplitudes[2] > 0
    assert widths[0] < widths[1] < widths[2]
    assert 1.2 < widths[0] < 2.6  # a spark, not a point or a wave
    assert focus_subtype(0.2) == "in_focus" and focus_subtype(1.2) == "out_of_focus"


def test_spark_rises_faster_than_it_decays_and_embers_last_longer():
    spark = measure_contribution(_linescan_view(Release(15.0, 6.0, 10.0), 0.2), 0.5, 0.05)
    ember = measure_contribution(_linescan_view(Release(2.0, 100.0, 10.0), 0.2), 0.5, 0.05)
    assert 3.0 < spark["rise_ms"] < spark["t50_ms"]
    assert 10.0 < spark["fdhm_ms"] < 60.0
    assert ember["fdhm_ms"] > 3 * spark["fdhm_ms"]
    assert ember["amplitude_dff0"] < spark["amplitude_dff0"]


# ----------------------------------------------------------------------------- recordings


def test_same_seed_same_recording_other_seed_differs():
    a, b, c = dev_linescan(3, **SMALL), dev_linescan(3, **SMALL), dev_linescan(4, **SMALL)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.instance_mask, b.instance_mask)
    assert [e["amplitude_dff0"] for e in a.events] == [e["amplitude_dff0"] for e in b.events]
    assert a.data.shape != c.data.shape or not np.array_equal(a.data, c.data)


def test_ground_truth_masks_and_events_agree(busy_linescan):
    rec, truth = busy_linescan.recording, busy_linescan.truth
    ids = set(np.unique(rec.instance_mask)) - {0}
    assert ids == {e["event_id"] for e in rec.events} and len(ids) >= 10
    subtypes = {e["subtype"] for e in rec.events}
    assert subtypes <= SUBTYPES and {"pair", "repeat"} <= subtypes and len(subtypes) >= 4
    for ev in rec.events:
        assert list(ev) == [*EVENT_COLUMNS, "subtype"]
        Event.from_dict(ev)  # valid against the schema
        inside = rec.instance_mask == ev["event_id"]
        assert np.all(rec.class_mask[inside] == CLASS_IDS[ev["kind"]])
        assert ev["amplitude_dff0"] > 0
        line, px = round(ev["t_peak_ms"] / rec.dt_ms), round(ev["x_um"] / rec.pixel_um)
        assert rec.instance_mask[line, px] == ev["event_id"]
        assert truth.clean_dff0[line, px] >= ev["amplitude_dff0"] * 0.999
    labelled = rec.instance_mask > 0
    assert np.all((rec.class_mask > 0) == (labelled | (rec.class_mask == IGNORE)))


def test_counts_are_uint16_with_dark_extracellular_pixels(busy_linescan):
    rec, layout = busy_linescan.recording, busy_linescan.layout
    assert rec.data.dtype == np.uint16 and rec.axes == "TX"
    assert rec.data.shape == rec.class_mask.shape == rec.instance_mask.shape
    assert rec.class_mask.dtype == np.uint8 and rec.instance_mask.dtype == np.int32
    cell = rec.data[:, layout.inside].mean()
    det = busy_linescan.setup.detector
    assert cell > rec.blank + 0.5 * det.gain_counts_per_photon * det.resting_photons
    outside = generate(dev_params("linescan", {**SMALL, "extracellular_fraction": 0.3,
                                               "cell_end_probability": 1.0}), 11)
    dark = outside.recording.data[:, ~outside.layout.inside]
    assert dark.size and abs(dark.mean() - outside.recording.blank) < 5.0


def test_movie_shape_rows_and_events():
    rec = dev_movie(2, duration_s=0.6, n_rows=32, n_cols=96, pixel_um=0.2, n_templates=2,
                    spark_rate_per_100um2_s=10.0, nucleus_probability=0.0)
    assert rec.axes == "TYX" and rec.data.dtype == np.uint16 and rec.data.shape[1:] == (32, 96)
    assert rec.events and all(np.isfinite(e["y_um"]) for e in rec.events)
    assert set(np.unique(rec.instance_mask)) - {0} == {e["event_id"] for e in rec.events}


def test_empty_recordings_have_no_events():
    rec = dev_linescan(1, empty=True, **SMALL)
    assert rec.events == [] and not rec.instance_mask.any() and not rec.class_mask.any()


def test_calibration_draws_stay_in_their_ranges():
    line, movie = LinescanDevParams(), MovieDevParams()
    for seed in range(30):
        s = draw_setup(line, np.random.default_rng(seed))
        assert 0.08 <= s.pixel_um <= 0.3 and 0.5 <= s.dt_ms <= 3.0
        assert s.shape[1] in (256, 512, 1024) and 2.25 <= s.detector.resting_photons <= 100
        assert 3.0 <= s.duration_ms / 1000 <= 5.0 + 0.01
        assert 0.3 <= s.psf.fwhm_xy_um <= 0.45 and 1.2 <= s.psf.fwhm_z_um <= 2.0
        m = draw_setup(movie, np.random.default_rng(seed))
        assert 3.0 <= m.dt_ms <= 20.0 and 32 <= m.shape[1] <= 64 and m.shape[2] == 256
        assert m.row_dt_ms == pytest.approx(m.dt_ms / m.shape[1])


def test_overrides_fix_ranges_and_reject_unknown_keys():
    params = with_overrides(LinescanDevParams(), {"pixel_um": 0.2, "n_px_choices": 512,
                                                  "empty": "true", "dyes": "fluo4"})
    assert params.pixel_um == (0.2, 0.2) and params.n_px_choices == (512,)
    assert params.empty is True and params.dyes == ("fluo4",)
    assert draw_setup(params, np.random.default_rng(0)).pixel_um == 0.2
    with pytest.raises(ValueError, match="unknown dev-set parameter"):
        with_overrides(LinescanDevParams(), {"resting_photons": 5})
    with pytest.raises(ValueError, match="template_noise_sd='abc'"):
        with_overrides(LinescanDevParams(), {"template_noise_sd": "abc"})
    with pytest.raises(ValueError, match="kind"):
        DevSource("stack")


# ----------------------------------------------------------------------------- evaluation


def test_load_data_reads_dev_specs():
    from offline.commands.evaluate import load_data

    recs = load_data("dev:linescan:2", dict(SMALL), seed=7)
    assert len(recs) == 2 and recs[0].name != recs[1].name
    assert all(r.axes == "TX" and r.data.dtype == np.uint16 for r in recs)
    empty = load_data("dev:linescan-empty:1", dict(SMALL), seed=7)
    assert empty[0].events == [] and empty[0].data.shape == recs[0].data.shape


def test_subtype_recall_and_false_events_in_evaluation():
    from offline.datasets import LabeledRecording
    from offline.evaluate import pool_results, score_recording
    from offline.evaluate_report import format_tables

    truth = np.zeros((20, 30), np.int32)
    truth[2:6, 2:6], truth[10:14, 10:14] = 1, 2
    pred = np.zeros_like(truth)
    pred[2:6, 3:7] = 5  # overlaps event 1 only
    events = [dict(dict.fromkeys(EVENT_COLUMNS, np.nan), event_id=i, kind="spark", subtype=s)
              for i, s in ((1, "in_focus"), (2, "out_of_focus"))]
    rec = LabeledRecording(np.zeros((20, 30), np.uint16), (truth > 0).astype(np.uint8), truth,
                           0.2, 2.0, "TX", events=events)
    found = Event(5, "spark", 0, 0, 0, 0, float("nan"), 1, 1, 1, 1, 1)
    scored = score_recording(rec, [found], pred)
    assert scored["subtypes"] == {"in_focus": [1, 1, 1], "out_of_focus": [0, 1, 0]}
    empty = dataclasses.replace(rec, class_mask=np.zeros_like(rec.class_mask),
                                instance_mask=np.zeros_like(truth), events=[])
    result = pool_results([scored, score_recording(empty, [found], pred)])
    assert result.subtype_recall["out_of_focus"]["recall"] == 0.0
    assert result.false_events["per_s"] == pytest.approx(1 / 0.04)
    text = format_tables(result)
    assert "Recall by subtype" in text and "false events per second" in text
    assert "subtype_recall" in result.to_dict()
    # one row per recording: the annotated one found 1 of its 2 sparks with its 1 event
    first, second = result.per_recording
    assert first["spark"]["n"] == 2 and first["spark"]["recall"] == 0.5
    assert first["spark"]["precision"] == 1.0 and first["n_predicted"] == 1
    assert second["spark"]["n"] == 0 and second["n_predicted"] == 1
    assert "Per recording" in text and "| 50.0 % | 100.0 % | 1 |" in text
    assert "matched at most once" in text and result.one_to_one["spark"]["recall"] == 0.5


def test_one_to_one_matching_sees_merged_pairs_and_fragments():
    # two annotated sparks merged into one predicted event; a third split in two fragments
    truth = np.zeros((20, 40), np.int32)
    truth[2:6, 2:6], truth[2:6, 7:11], truth[10:16, 20:30] = 1, 2, 3
    pred = np.zeros_like(truth)
    pred[2:6, 2:11] = 7  # the pair, merged
    pred[10:16, 20:25], pred[10:16, 25:30] = 8, 9  # fragments of event 3
    classes = {1: "spark", 2: "spark", 3: "spark"}
    matching = metrics.match_instances(truth, classes, pred, {7: "spark", 8: "spark", 9: "spark"})
    tables = metrics.detection_scores(metrics.confusion_tables(matching))
    assert tables["spark"]["recall"] == 1.0 and tables["spark"]["precision"] == 1.0  # IoMin
    counts = metrics.one_to_one_counts(matching)
    assert counts["spark"] == [2, 3, 3]  # one of the pair, one fragment
    scores = metrics.one_to_one_scores(counts)
    assert scores["spark"]["recall"] == pytest.approx(2 / 3)
    assert scores["spark"]["precision"] == pytest.approx(2 / 3)
    assert np.isnan(scores["wave"]["f1"])
    assert metrics.recall_by_subtype(metrics.match_instances(truth, {1: "spark"}, pred,
                                                             {5: "spark"}), {}) == {}
    # by subtype: both sparks of the merged pair are found, only one of them matched once
    by_subtype = metrics.recall_by_subtype(matching, {1: "pair", 2: "pair", 3: "in_focus"})
    assert by_subtype == {"pair": [2, 2, 1], "in_focus": [1, 1, 1]}


def test_template_noise_puts_lumps_in_single_sparks_only_and_keeps_the_truth():
    params = dev_params("linescan", BUSY)
    plain = generate(params, 5)
    lumpy = generate(with_overrides(params, {"template_noise_sd": "0.2,0.3"}), 5)
    np.testing.assert_array_equal(plain.truth.instance_mask, lumpy.truth.instance_mask)
    np.testing.assert_array_equal(plain.truth.clean_dff0, lumpy.truth.clean_dff0)
    np.testing.assert_equal(lumpy.truth.events, plain.truth.events)  # NaN equals NaN here
    assert not np.array_equal(plain.recording.data, lumpy.recording.data)
    # off: the signal is the noise-free sum itself
    assert with_template_noise(plain.truth.clean_dff0, [], params, 5) is plain.truth.clean_dff0
    # on: lumps inside single sparks, in proportion to their peak; nothing elsewhere
    clean = np.zeros((60, 40), np.float32)
    bump = np.exp(-0.5 * ((np.arange(20)[:, None] - 8) ** 2 + (np.arange(10) - 5) ** 2) / 4.0)
    single = Contribution("spark", SINGLE_SUBTYPES[0], (5, 2), (2.0 * bump).astype(np.float32))
    pair = Contribution("spark", "pair", (30, 25), bump.astype(np.float32))
    clean[single.slices] += single.values
    clean[pair.slices] += pair.values
    on = with_overrides(params, {"template_noise_sd": "0.2,0.2"})
    signal = with_template_noise(clean, [single, pair], on, 7)
    lumps = signal - clean
    assert np.count_nonzero(lumps[pair.slices]) == 0
    outside = np.ones(clean.shape, bool)
    outside[single.slices] = False
    assert np.count_nonzero(lumps[outside]) == 0
    core = single.values >= 0.5 * single.peak_dff0
    assert 0.2 < lumps[single.slices][core].std() / (0.2 * single.peak_dff0) < 1.5
