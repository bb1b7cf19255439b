"""The dashboard's quality figures say which significance floors the events had to pass."""

from __future__ import annotations

from ui.views.quality import quality_rows


def _not_significant(events: dict) -> tuple[str, str, str]:
    return next(row for row in quality_rows({"events": events}) if row[0] == "Not significant")


def test_not_significant_row_names_the_local_floor_only_where_the_model_sets_one():
    plain = _not_significant({"rejected_not_significant": 12, "min_significance": 7.0,
                              "local_min_significance": None})
    assert plain[1] == "12"
    assert "7.0 noise SDs" in plain[2] and "own pixels" not in plain[2]
    local = _not_significant({"rejected_not_significant": 12, "min_significance": 7.0,
                              "local_min_significance": 4.0})
    assert "7.0 noise SDs" in local[2] and "under 4.0 above their own pixels" in local[2]


def test_tails_row_only_where_tails_were_dropped():
    labels = [row[0] for row in quality_rows({"events": {"rejected_tail_of_earlier_event": 0}})]
    assert "Tails" not in labels
    rows = quality_rows({"events": {"rejected_tail_of_earlier_event": 3}})
    tails = next(row for row in rows if row[0] == "Tails")
    assert tails[1] == "3" and "peaked before they began" in tails[2]
    assert [row[0] for row in rows].index("Tails") == [row[0] for row in rows].index(
        "Not significant") + 1


def test_candidates_without_a_rise_get_a_row_only_when_there_are_some() -> None:
    labels = [row[0] for row in quality_rows({"events": {"rejected_no_rise": 0}})]
    assert "No rise" not in labels
    rows = quality_rows({"events": {"rejected_no_rise": 4}})
    no_rise = next(row for row in rows if row[0] == "No rise")
    assert no_rise[1] == "4" and "never rose above the baseline" in no_rise[2]


def test_offset_row_says_where_the_blank_came_from_and_how_sure_the_fit_is():
    def offset(blank):
        return next(row for row in quality_rows({"events": {}, "blank": blank})
                    if row[0].startswith("Offset"))[:2]

    assert offset(None) == ("Offset", "—")
    assert offset({"counts": 100.0, "source": "given", "f0_relative_sd": None}) == (
        "Offset (given)", "100.0")
    assert offset({"counts": 412.34, "source": "photon_transfer", "f0_relative_sd": 0.031}) == (
        "Offset (noise)", "412.3 ±3 %")


def test_measurable_row_gives_each_parameters_share_where_the_report_has_them():
    def measurable(events: dict) -> tuple[str, str, str]:
        return next(row for row in quality_rows({"events": events}) if row[0] == "Measurable")

    old = measurable({"measurable_fraction": 0.0})  # a schema-2 report
    assert old[1] == "0.0 %" and "each:" not in old[2]
    new = measurable({"measurable_fraction": 0.0, "measured_fraction_by_parameter": {
        "amplitude_dff0": 0.8, "fwhm_um": 0.75, "fdhm_ms": 0.8, "rise_ms": 0.0,
        "t50_ms": 0.7}})
    assert new[1] == "0.0 %"
    assert "each: ΔF/F0 80.0 %, FWHM 75.0 %, FDHM 80.0 %, rise 0.0 %, t50 70.0 %" in new[2]


def test_a_caption_names_each_parameters_share_only_where_some_are_missing():
    from ui.views.quality import measured_caption

    full = {"reported": 10, "measured_fraction_by_parameter": dict.fromkeys(
        ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms"), 1.0)}
    assert measured_caption({"events": full}) is None
    assert measured_caption({"events": {"reported": 10}}) is None  # schema 2
    partial = {"reported": 46, "measured_fraction_by_parameter": {
        "amplitude_dff0": 0.109, "fwhm_um": 0.109, "fdhm_ms": 0.087, "rise_ms": 0.043,
        "t50_ms": 0.043}}
    caption = measured_caption({"events": partial})
    assert caption.startswith("Measured in the reported events: ΔF/F0 10.9 % · FWHM 10.9 %")
    assert "rise 4.3 % · t50 4.3 %" in caption and "flags say why" in caption
