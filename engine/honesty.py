"""What an event's numbers cannot say: parameters below the sampling resolution, saturation.

Applied to every characterized event (after :func:`engine.characterize.characterize`), before
it reaches any sink. Each rule empties a value (NaN: an empty cell in ``events.csv``) and
records why as a token in the event's ``flags`` (DESIGN.md "Honest outputs"):

* ``fwhm_um<2px`` — a FWHM under 2 pixels is not resolved by the sampling;
* ``fdhm_ms<2samples``, ``rise_ms<2samples``, ``t50_ms<2samples`` — a duration under two line or
  frame intervals is not resolved;
* ``<name>_unmeasured`` — characterization could not measure it (a crossing outside the data
  or beyond the valley before a neighbouring event, :mod:`engine.timecourse`; a failed fit);
* ``saturated`` — pixels of the event reached the detector's saturation level: its peak
  ΔF/F0 and widths are lower bounds, so amplitude, FWHM, FDHM, rise and t50 are all emptied
  (position and timing stay);
* ``significance_unknown`` — too little noise around the event to compute its significance;
* ``imprecise`` — the event's significance is under the model's ``precise_min_significance``
  (``thresholds.json``): its parameters are kept, but on the validation recordings of both
  generators events that weak had amplitude, FWHM or FDHM median errors above 15 % (README,
  "What the significance says about an event's parameters"); a population measurement
  should leave them out or weigh them less;
* ``truncated`` — a piece of a region that lasted longer than ``max_event_ms`` and was cut
  (:class:`engine.instances.TrackerConfig`): its parameters are those of a part, so all five
  are empty (position and timing stay);
* ``burst`` — closed in a burst beyond the stream's characterization budget
  (:mod:`engine.burst`): neither tested for significance nor characterized, all five
  parameters empty (position and timing stay).
"""

from __future__ import annotations

import math

import numpy as np

from engine.burst import BURST_FLAG
from engine.instances import Instance

PARAMETERS = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")
TRUNCATED_FLAG = "truncated"
IMPRECISE_FLAG = "imprecise"
#: the ``thresholds.json`` key of the ``imprecise`` rule's significance threshold
PRECISE_KEY = "precise_min_significance"
#: values under this many samples are not resolved
MIN_SAMPLES = 2.0
_DURATIONS = ("fdhm_ms", "rise_ms", "t50_ms")


def saturation_level(dtype: np.dtype | str, override: float | None = None) -> float | None:
    """Counts at which the detector saturates: ``override``, else the integer dtype's maximum
    (255 for uint8, 65535 for uint16); None for float data without an override."""
    if override is not None:
        return float(override)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return None


def resolution_flags(fields: dict, pixel_um: float, dt_ms: float) -> list[str]:
    """Empty the parameters ``fields`` cannot resolve (in place); returns the flag tokens."""
    flags = []
    for name in PARAMETERS:
        value = fields.get(name, math.nan)
        if value is None or not math.isfinite(value):
            fields[name] = math.nan
            flags.append(f"{name}_unmeasured")
        elif name == "fwhm_um" and value < MIN_SAMPLES * pixel_um:
            fields[name] = math.nan
            flags.append("fwhm_um<2px")
        elif name in _DURATIONS and value < MIN_SAMPLES * dt_ms:
            fields[name] = math.nan
            flags.append(f"{name}<2samples")
    return flags


def saturation_flags(fields: dict, instance: Instance) -> list[str]:
    """Empty every parameter of an event whose pixels saturated (in place)."""
    if instance.saturated is None:
        return []
    if not np.any(instance.saturated & instance.mask_in_context()):
        return []
    for name in PARAMETERS:
        fields[name] = math.nan
    return ["saturated"]


def apply(fields: dict, instance: Instance, pixel_um: float, dt_ms: float,
          precise_min_significance: float | None = None) -> dict:
    """All rules: returns ``fields`` with emptied values, ``significance`` and ``flags``
    (``precise_min_significance``: the ``imprecise`` rule's threshold, None: off)."""
    if instance.over_budget:
        flags = [BURST_FLAG]
    elif instance.truncated:
        flags = [TRUNCATED_FLAG]
        for name in PARAMETERS:
            fields[name] = math.nan
    else:
        flags = saturation_flags(fields, instance)
    if not flags:
        flags = resolution_flags(fields, pixel_um, dt_ms)
    fields["significance"] = float(instance.significance)
    if not math.isfinite(instance.significance):
        flags.append("significance_unknown")
    elif (precise_min_significance is not None
          and instance.significance < precise_min_significance
          and any(math.isfinite(fields.get(name, math.nan)) for name in PARAMETERS)):
        flags.append(IMPRECISE_FLAG)
    fields["flags"] = ";".join(flags)
    return fields


def measured(fields: dict) -> tuple[str, ...]:
    """The names of the parameters that were measured (not empty)."""
    return tuple(name for name in PARAMETERS if math.isfinite(fields.get(name, math.nan)))


def measurable(fields: dict) -> bool:
    """All five parameters were measured (none empty)."""
    return len(measured(fields)) == len(PARAMETERS)
