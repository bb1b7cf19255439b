"""A spark too brief or too narrow to be a Ca²⁺ spark is not reported.

A spark lasts tens of milliseconds and spreads over a micrometre or more (no annotated spark of
either generator has an FDHM under 20 ms or a FWHM under 1.3 µm). A candidate the detector
names spark whose *measured* FDHM or FWHM lies far below that -- a lump of noise on the decay
of a brighter spark, a flicker that clears the significance floor -- is not one. With a
model's ``spark_min_fdhm_ms`` / ``spark_min_fwhm_um`` (``thresholds.json``), the analyzer's
accept check drops such a spark and the quality report counts it
(``events.rejected_too_small``). Only values the event would report are tested: one the
sampling cannot resolve (empty in ``events.csv``, :mod:`engine.honesty`) keeps the event.
No shipped model sets the floors: measured on validation line-scans (``python -m
offline.experiments.spark_minimum_size``), the best pair removed lumps from sparks that carry
a recorded shape's noise but lost real development sparks on fresh recordings, so it was not
adopted (docs/RESULTS.md, "Sparks too brief or too narrow").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from . import honesty
from .instances import Instance
from .kind_rules import KindRules

#: thresholds keys: a spark measured briefer (FDHM, ms) or narrower (FWHM, µm) is not reported
MIN_FDHM_KEY = "spark_min_fdhm_ms"
MIN_FWHM_KEY = "spark_min_fwhm_um"


def too_small(fields: Mapping, min_fdhm_ms: float | None, min_fwhm_um: float | None) -> bool:
    """Whether ``fields`` (an event's, as reported: kind, ``fdhm_ms``, ``fwhm_um``) is a spark
    whose finite FDHM or FWHM lies below its floor (None: no floor)."""
    if fields["kind"] != "spark":
        return False
    fdhm, fwhm = float(fields["fdhm_ms"]), float(fields["fwhm_um"])
    return ((min_fdhm_ms is not None and math.isfinite(fdhm) and fdhm < min_fdhm_ms)
            or (min_fwhm_um is not None and math.isfinite(fwhm) and fwhm < min_fwhm_um))


def rejects(characterized: Mapping, instance: Instance, pixel_um: float, dt_ms: float,
            kind_rules: KindRules, floors: tuple[float | None, float | None]) -> bool:
    """:func:`too_small` on the event ``instance`` would report: its characterization
    (``characterized``, not changed) emptied where the sampling cannot resolve it and named by
    the model's kind rules, as the analyzer reports events."""
    if floors == (None, None):
        return False
    fields = honesty.apply(dict(characterized), instance, pixel_um, dt_ms)
    kind_rules.apply(fields)
    return too_small(fields, *floors)
