"""An event's kind from its time course: the physics a detector's class probabilities may miss.

A Ca²⁺ spark is one release site (or a tight cluster) opening for ~5–20 ms: its rise from the
10 % crossing to the peak follows the release and is ~10 ms (5–20 ms), its full duration at half
maximum (FDHM) ~20–50 ms (Cheng & Lederer 2008, Physiol Rev 88:1491, table 1). A puff -- several
sites of a cluster recruited one after another -- keeps rising while new sites open, for tens to
hundreds of ms, and lasts well over 100 ms. A detector trained on one simulator's puffs can call a
longer, dimmer cluster a spark (castream's movie network does on the development generator:
docs/RESULTS.md, "In distribution and on data the training never saw").

With the model directory's thresholds (:class:`KindRules`; tuned on validation data only,
``python -m offline.experiments.kind_by_duration`` and ``... kind_by_rise``), applied after the
event is characterized and its unresolvable values emptied (:mod:`engine.honesty`):

* a ``spark`` whose measured rise (10 % → peak) is at least ``puff_min_rise_ms`` becomes a
  ``puff``, flagged ``kind_by_rise`` (a rise no single release makes) -- where the model sets
  ``puff_min_onset_frames``, only if the event is also seen rising in its own region: from its
  detected start to its peak (``t_peak_ms - t_start_ms``) at least that many frames. A spark
  detected at its peak whose measured 10 % crossing lies several frames before its region began
  took that foot from what came before it (a wave's tail, a neighbour, noise): on development
  validation movies such "rises" reached 430--485 ms on sparks of one frame's onset; and,
  where the model sets ``puff_min_rise_samples``, only where the frames resolve the threshold
  (``puff_min_rise_ms`` spans at least that many frames);
* a ``spark`` whose measured FDHM is at least ``puff_min_fdhm_ms`` becomes a ``puff``, flagged
  ``kind_by_fdhm``;
* a ``puff`` whose measured FDHM is under ``spark_max_fdhm_ms`` becomes a ``spark``, flagged
  ``kind_by_fdhm`` (never one the rise rule made);
* a ``puff`` whose measured FWHM is under ``spark_max_fwhm_um`` becomes a ``spark``, flagged
  ``kind_by_fwhm``: one release site, however long it stays open (an *ember*, a long-lasting
  spark), is as narrow as a spark, ~2 µm (Cheng & Lederer 2008); a cluster of sites is wider.

* a ``wave`` whose measured FDHM is under ``wave_min_fdhm_ms`` becomes a ``spark``, flagged
  ``kind_by_fdhm``. A wave raises every place it passes for hundreds of ms; a region named wave
  for its extent whose brightest place lasts as briefly as a spark is a spark on raised
  surroundings (the slowly decaying ΔF/F0 a wave leaves behind, a drift), which the detector's
  foreground joined into a wide stretch. On development validation line-scans every such false
  wave had a FDHM of 18-48 ms and a FWHM of about 2 µm, every true one a FDHM of 76 ms or more
  or none measured (docs/RESULTS.md, "A wave lasts longer than a spark").

A value that was not measured (saturated, under two samples, in a burst) changes nothing. Waves
are touched by the last rule only: otherwise their kind comes from their extent.

**Line-scans have no puffs** (:meth:`KindRules.for_stream`): whatever a detector calls a
``puff`` on a line-scan -- a long-lasting local release -- is reported as a ``spark`` flagged
``ember``. In ventricular myocytes such events are *embers*, long-lasting sparks counted
among the sparks (Cheng & Lederer 2008; SparkMaster 2's and the development generator's
annotations, and the independent benchmark's spark recall by kind); the training simulator's
line-scan "puffs" are these embers (:mod:`acquisition.simulate`, "Puffs / embers"), and the
evaluation counts them as sparks on line-scans too (``offline.evaluate.in_castream_vocabulary``).
The flag keeps them apart where it matters: the cell classifier, trained on sparks, skips
them. Applied last, after the threshold rules. On validation line-scans (24 development, 24
simulator; docs/RESULTS.md, "Embers are sparks") spark F1 rose 0.932 → 0.945 and 0.970 → 0.982.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

#: flag tokens of an event whose kind a rule changed
KIND_FLAG = "kind_by_fdhm"
RISE_FLAG = "kind_by_rise"
WIDTH_FLAG = "kind_by_fwhm"
EMBER_FLAG = "ember"
#: threshold keys (``thresholds.json`` / ``hybrid.json`` / overrides)
PUFF_MIN_KEY = "puff_min_fdhm_ms"
SPARK_MAX_KEY = "spark_max_fdhm_ms"
PUFF_MIN_RISE_KEY = "puff_min_rise_ms"
SPARK_MAX_WIDTH_KEY = "spark_max_fwhm_um"
PUFF_MIN_ONSET_KEY = "puff_min_onset_frames"
PUFF_RISE_SAMPLES_KEY = "puff_min_rise_samples"
WAVE_MIN_FDHM_KEY = "wave_min_fdhm_ms"
KEYS = (PUFF_MIN_KEY, SPARK_MAX_KEY, PUFF_MIN_RISE_KEY, SPARK_MAX_WIDTH_KEY, PUFF_MIN_ONSET_KEY,
        PUFF_RISE_SAMPLES_KEY, WAVE_MIN_FDHM_KEY)


@dataclass(frozen=True)
class KindRules:
    """The thresholds of the rules above (``None``: that rule is off)."""

    puff_min_fdhm_ms: float | None = None
    spark_max_fdhm_ms: float | None = None
    puff_min_rise_ms: float | None = None
    spark_max_fwhm_um: float | None = None
    #: the rise rule asks for this many frames from the event's start to its peak (None: off)
    puff_min_onset_frames: float | None = None
    #: the rise rule runs only where ``puff_min_rise_ms`` spans at least this many frames
    #: (None: always; it needs ``dt_ms``)
    puff_min_rise_samples: float | None = None
    #: a wave whose FDHM is under this is a spark (None: off)
    wave_min_fdhm_ms: float | None = None
    #: a puff is reported as a spark flagged ``ember`` (line-scans)
    puffs_are_embers: bool = False
    #: the stream's frame interval (``puff_min_onset_frames`` needs it; None: that check is off)
    dt_ms: float | None = None

    @classmethod
    def from_thresholds(cls, thresholds: Mapping[str, float | None]) -> KindRules:
        """The rules a detector's thresholds (``KEYS``) switch on."""
        return cls(**{key: thresholds.get(key) for key in KEYS})

    @classmethod
    def for_stream(cls, thresholds: Mapping[str, float | None], linescan: bool,
                   dt_ms: float | None = None) -> KindRules:
        """The rules for one stream (frame interval ``dt_ms``): its detector's thresholds, and
        no puffs on line-scans."""
        return replace(cls.from_thresholds(thresholds), puffs_are_embers=linescan, dt_ms=dt_ms)

    def apply(self, fields: dict) -> None:
        """Apply the rules to one event's ``fields`` (in place: ``kind``, ``flags``)."""
        self._apply_thresholds(fields)
        if self.puffs_are_embers and fields["kind"] == "puff":
            _rename(fields, "spark", EMBER_FLAG)

    def _apply_thresholds(self, fields: dict) -> None:
        if (fields["kind"] == "wave" and self.wave_min_fdhm_ms is not None
                and _measured(fields.get("fdhm_ms"))
                and fields["fdhm_ms"] < self.wave_min_fdhm_ms):
            _rename(fields, "spark", KIND_FLAG)
            return  # a spark's time course: the spark rules below do not apply to its region
        if (fields["kind"] == "spark" and self.puff_min_rise_ms is not None
                and _measured(fields.get("rise_ms"))
                and fields["rise_ms"] >= self.puff_min_rise_ms and self._rise_resolved()
                and self._rises_in_itself(fields)):
            _rename(fields, "puff", RISE_FLAG)
            return  # the other rules do not undo it
        if (fields["kind"] == "puff" and self.spark_max_fwhm_um is not None
                and _measured(fields.get("fwhm_um"))
                and fields["fwhm_um"] < self.spark_max_fwhm_um):
            _rename(fields, "spark", WIDTH_FLAG)
            return
        kind_by_duration(fields, self.puff_min_fdhm_ms, self.spark_max_fdhm_ms)

    def _rise_resolved(self) -> bool:
        """Whether the frames resolve ``puff_min_rise_ms`` (``puff_min_rise_samples``): a rise
        under two frames is never measured and a measured one is placed to about a frame, so
        where the threshold spans two frames or fewer every measured rise passes it, a spark's
        ~10 ms rise included. Measured on validation movies, the rule still scores better left
        on there (``offline.experiments.kind_by_rise --grid resolution``), so no packaged model
        sets it."""
        if self.puff_min_rise_samples is None or not self.dt_ms:
            return True
        return self.puff_min_rise_ms / self.dt_ms >= self.puff_min_rise_samples - 1e-9

    def _rises_in_itself(self, fields: dict) -> bool:
        """Whether the event rises for ``puff_min_onset_frames`` from its detected start to its
        peak (True where that check is off or the times are missing)."""
        if self.puff_min_onset_frames is None or not self.dt_ms:
            return True
        start, peak = fields.get("t_start_ms"), fields.get("t_peak_ms")
        if not (_measured(start) and _measured(peak)):
            return True
        return (peak - start) / self.dt_ms >= self.puff_min_onset_frames - 1e-9


def kind_by_duration(fields: dict, puff_min_fdhm_ms: float | None,
                     spark_max_fdhm_ms: float | None) -> None:
    """Apply the two FDHM rules to one event's ``fields`` (in place: ``kind``, ``flags``)."""
    fdhm = fields.get("fdhm_ms", math.nan)
    if not _measured(fdhm):
        return
    kind = fields["kind"]
    if kind == "spark" and puff_min_fdhm_ms is not None and fdhm >= puff_min_fdhm_ms:
        _rename(fields, "puff", KIND_FLAG)
    elif kind == "puff" and spark_max_fdhm_ms is not None and fdhm < spark_max_fdhm_ms:
        _rename(fields, "spark", KIND_FLAG)


def _measured(value) -> bool:
    return value is not None and math.isfinite(value)


def is_ember(row: Mapping) -> bool:
    """Whether an event (its dict) is a line-scan ember: a spark flagged ``ember``."""
    return EMBER_FLAG in str(row.get("flags", "")).split(";")


def _rename(fields: dict, kind: str, flag: str) -> None:
    fields["kind"] = kind
    flags = [f for f in str(fields.get("flags", "")).split(";") if f]
    fields["flags"] = ";".join([*flags, flag])
