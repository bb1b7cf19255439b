"""The one event schema, used by every sink, by ``castream analyze`` and by evaluation.

Definitions (DESIGN.md "Contracts / Events"):

* ``amplitude_dff0`` — peak F/F0 − 1 at the event's peak pixel.
* ``fwhm_um`` — full width at half maximum of the spatial profile through the peak.
* ``fdhm_ms`` — full duration at half maximum of the temporal profile through the peak.
* ``rise_ms`` — time from the 10 % crossing before the peak to the peak.
* ``t50_ms`` — time from the peak to 50 % decay.

Times are ms from the first line/frame of the stream; positions are µm from pixel 0.
``y_um`` is empty (NaN) for line-scans. Values that cannot be measured are NaN, and the reason
is one of the ``flags`` (:mod:`engine.honesty`).

* ``score`` — the detector's mean class probability over the event's pixels.
* ``significance`` — the event's peak ΔF/F0 against the local noise, in noise SDs
  (:mod:`engine.significance`); events below the model's ``min_significance`` are not reported.
* ``flags`` — ``;``-separated tokens saying what cannot be trusted, e.g.
  ``saturated;fwhm_um<2px;rise_ms<2samples`` (empty when nothing is flagged); ``kind_by_rise``
  / ``kind_by_fdhm`` say the kind came from the time course, not the detector
  (:mod:`engine.kind_rules`); ``truncated``: a piece of a region that lasted longer than
  ``max_event_ms`` and was cut (:mod:`engine.postprocess`); ``imprecise``: weaker than the
  model's ``precise_min_significance``, its parameters kept but typically more than 15 % off
  (:mod:`engine.honesty`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

EVENT_SCHEMA_VERSION = 2
EVENT_KINDS = ("spark", "puff", "wave")

#: Column order of ``events.csv`` and of every tabular sink.
EVENT_COLUMNS = (
    "event_id",
    "kind",
    "t_start_ms",
    "t_peak_ms",
    "t_end_ms",
    "x_um",
    "y_um",
    "amplitude_dff0",
    "fwhm_um",
    "fdhm_ms",
    "rise_ms",
    "t50_ms",
    "stream",
    "cell",
    "score",
    "significance",
    "flags",
)


@dataclass
class Event:
    """One characterized Ca²⁺ event."""

    event_id: int
    kind: Literal["spark", "puff", "wave"]
    t_start_ms: float
    t_peak_ms: float
    t_end_ms: float
    x_um: float
    y_um: float
    amplitude_dff0: float
    fwhm_um: float
    fdhm_ms: float
    rise_ms: float
    t50_ms: float
    stream: str = ""
    cell: str = ""
    score: float = math.nan
    significance: float = math.nan
    flags: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {EVENT_KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict:
        """Plain dict in :data:`EVENT_COLUMNS` order (for msgpack, CSV, SQLite)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Event:
        """Inverse of :meth:`to_dict`; ignores unknown keys, NaN for missing floats."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


assert tuple(f.name for f in fields(Event)) == EVENT_COLUMNS
