"""A puff whose time course peaks before its own region begins is the tail of an earlier event.

On a movie, a wave that has passed leaves its pixels raised for hundreds of ms, a plateau that
decays slowly, and the detector may name a region on it a puff. Characterized
(:func:`engine.characterize.characterize`), the time course at such a region's peak position
has its top *before* the region begins (the top of the plateau, where the wave's front
arrived): its brightest moment belonged to what passed there earlier. Such an event is not a
puff of its own. With a model's
``puff_peak_before_start_frames`` (``thresholds.json``; movies: 1), the analyzer's accept check
characterizes every candidate the detector names puff and does not report one whose peak lies
that many frames or more before its start; the quality report counts them
(``events.rejected_tail_of_earlier_event``).

Chosen on validation movies only (``python -m offline.experiments.peak_before_start``;
docs/RESULTS.md, "A puff that peaks before it begins"): dropping such puffs raised development puff F1 on three
validation sets and moved no other class.
"""

from __future__ import annotations

from collections.abc import Mapping

from .instances import Instance

#: thresholds key: a puff peaking this many frames or more before its start is not reported
TAIL_KEY = "puff_peak_before_start_frames"


def frames_before_start(fields: Mapping, instance: Instance, dt_ms: float) -> float:
    """How many frames the characterized peak (``fields["t_peak_ms"]``) lies before the
    instance's first frame (negative: after it)."""
    return instance.t_start - fields["t_peak_ms"] / dt_ms


def is_tail(fields: Mapping, instance: Instance, dt_ms: float, min_frames: float) -> bool:
    """Whether ``instance`` (characterized as ``fields``) is a puff peaking ``min_frames`` or
    more before its start."""
    return (instance.kind == "puff"
            and frames_before_start(fields, instance, dt_ms) >= min_frames - 1e-9)
