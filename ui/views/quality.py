"""The recording's quality report (computed by the engine, :mod:`engine.quality`): its
warnings as alerts, and the figures that say how far the events can be trusted."""

from __future__ import annotations

import math

import streamlit as st

from ui.views.common import count, number


def quality_of(stats: dict | None) -> dict:
    """The quality report carried by the latest statistics sample ({} before the first)."""
    quality = (stats or {}).get("quality")
    return quality if isinstance(quality, dict) else {}


def _pct(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    return number(100 * value, 1, "%") if math.isfinite(value) else "—"


#: how the dashboard names each source of the blank (engine/blank.py), short: a metric's label
BLANK_SOURCES = {"given": "given", "dark_pixels": "dark px", "photon_transfer": "noise",
                 "darkest_pixels": "guess"}


def _blank(blank) -> tuple[str, str]:
    """``("Offset (noise)", "412.3 ±3 %")``: the blank's source in the label, its counts (and
    the F0 uncertainty of a photon-transfer fit) as the value; em dash before it is known."""
    if not isinstance(blank, dict) or blank.get("counts") is None:
        return "Offset", "—"
    source = BLANK_SOURCES.get(blank.get("source"), str(blank.get("source")))
    sd = blank.get("f0_relative_sd")
    fit = f" ±{number(100 * sd, 0)} %" if isinstance(sd, int | float) and math.isfinite(sd) else ""
    return f"Offset ({source})", f"{number(blank['counts'], 1)}{fit}"


#: short names of the five parameters in the dashboard's help texts
_SHORT = {"amplitude_dff0": "ΔF/F0", "fwhm_um": "FWHM", "fdhm_ms": "FDHM", "rise_ms": "rise",
          "t50_ms": "t50"}


def _shares(fractions: dict, separator: str) -> str:
    """``ΔF/F0 80 %<separator>FWHM 78 %…`` of a quality report's per-parameter fractions."""
    return separator.join(f"{_SHORT.get(name, name)} {_pct(value)}"
                          for name, value in fractions.items())


def _by_parameter(fractions: dict | None) -> str:
    """``"; each: ΔF/F0 80 %, FWHM 78 %, …"`` (empty before quality schema 3)."""
    return "; each: " + _shares(fractions, ", ") if fractions else ""


def measured_caption(quality: dict) -> str | None:
    """One line under the grid naming each parameter's measured share, where some reported
    events lack one (None when all have all five, or before quality schema 3)."""
    events = quality.get("events", {})
    fractions = events.get("measured_fraction_by_parameter")
    if not fractions or not events.get("reported"):
        return None
    if all(float(value) >= 1.0 for value in fractions.values()):
        return None
    return ("Measured in the reported events: " + _shares(fractions, " · ")
            + " (empty in the others; each event's flags say why: saturated, under the "
            "sampling's resolution, or not measurable)")


def quality_rows(quality: dict) -> list[tuple[str, str, str]]:
    """``(label, value, help)`` for each quality figure (em dash when not measured yet)."""
    events = quality.get("events", {})
    calibration = quality.get("calibration", {})
    in_range = {True: "in range", False: "OUTSIDE " + ", ".join(calibration.get("outside", [])),
                None: "—"}[calibration.get("in_range")]
    local = events.get("local_min_significance")
    below = f"candidates below {number(events.get('min_significance'), 1)} noise SDs"
    if local is not None:
        below += f" or under {number(local, 1)} above their own pixels before them"
    tails = events.get("rejected_tail_of_earlier_event")
    rejected_rows = ([("Tails", count(tails),
                   "candidate puffs whose time course peaked before they began (the plateau or "
                   "tail an earlier event, e.g. a wave, left behind), not reported")]
                 if tails else [])
    no_rise = events.get("rejected_no_rise")
    if no_rise:
        rejected_rows.append(("No rise", count(no_rise),
                          "candidates whose own time course never rose above the baseline "
                          "before them (a step or drift, no transient), not reported"))
    small = events.get("rejected_too_small")
    if small:
        rejected_rows.append(("Too small", count(small),
                              "candidate sparks measured briefer or narrower than a Ca²⁺ spark "
                              "can be (the model's floors), not reported"))
    return [
        ("Resting SNR", number(quality.get("resting_snr"), 1),
         "median F0 / temporal noise SD of the cell's pixels"),
        ("Detection limit", number(quality.get("detection_limit_dff0"), 2, "ΔF/F0"),
         "ΔF/F0 under which a typical spark (2 µm, 25 ms) is likely missed at this SNR and "
         "sampling: spark counts are lower bounds where it is high"),
        ("Saturated", _pct(quality.get("saturated_fraction")),
         "pixels at the detector's maximum; events on them get no parameters"),
        ("Bleaching", _pct(quality.get("bleaching_fraction")), "loss of baseline F0 so far"),
        ("Calibration", in_range, "pixel size and interval vs the model's trained range"),
        (*_blank(quality.get("blank")),
         "the detector's offset (blank, counts) taken off the raw counts, and where it came "
         "from: given, the field's dark pixels, the noise's photon transfer (no dark pixels: "
         "± is how uncertain its fit leaves F0, a lower bound; every ΔF/F0 depends on it), or a "
         "guess from the darkest pixels"),
        ("Not significant", count(events.get("rejected_not_significant")),
         f"{below}, not reported"),
        *rejected_rows,
        ("Measurable", _pct(events.get("measurable_fraction")),
         "reported events with all five parameters resolved" + _by_parameter(
             events.get("measured_fraction_by_parameter"))),
        ("Imprecise", count(events.get("imprecise")),
         "reported events too weak for precise parameters (flag 'imprecise': on validation "
         "data such events were more than 15 % off in amplitude, FWHM or FDHM)"),
    ]


def render_quality_alerts(stats: dict | None) -> None:
    """Each quality warning as an alert."""
    for warning in quality_of(stats).get("warnings", []):
        st.warning(warning, icon=":material/report:")


def render_quality(stats: dict | None) -> None:
    """A compact grid of the quality figures."""
    quality = quality_of(stats)
    with st.container(key="quality", border=True):
        st.markdown("**Recording quality**")
        if not quality:
            st.caption("Not measured yet.")
            return
        rows = quality_rows(quality)
        for start in range(0, len(rows), 2):
            cols = st.columns(2)
            for col, (label, value, help_text) in zip(cols, rows[start:start + 2], strict=False):
                col.metric(label, value, help=help_text)
        caption = measured_caption(quality)
        if caption:
            st.caption(caption)
