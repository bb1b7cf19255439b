"""The per-cell summary: each cell's structure (score, classes) joined with its spark phenotype.

:class:`CellPhenotypes` collects a stream's attributed events per cell (``event.cell`` = the
``cell_id``) and :meth:`CellPhenotypes.rows` joins them with the field's cell rows into one
row per accepted cell (:data:`PHENOTYPE_COLUMNS`), cells without events included (a silent
cell is a result too). The same code serves ``analyze --cells`` (``summary.json`` "cells") and
``serve`` (store table ``cell_phenotypes``, PUB topic ``cell`` with ``source = "phenotype"``).

Spark phenotype of a cell: counts by kind; ``spark_rate_hz`` (sparks per s of recording);
the spark frequency per sampled size, ``sparks_per_100um2_s`` for movies (over the cell's area
inside the movie's field of view) and ``sparks_per_100um_s`` for line-scans (over the length of
the line inside the cell, SparkMaster's unit); the median amplitude, FWHM, FDHM, rise and t50
of its sparks; and the Yang et al. vote (``label``, ``confidence``) over its sparks alone, with
the stream's classifier, threshold and trust. Medians and the vote use the cell's last
:data:`SPARKS_KEPT` sparks (memory stays bounded in ``serve``); the counts are exact.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable

from .cellclass import CellVote
from .cells_attribution import Attribution, FieldCells
from .events import Event
from .report import parameter_medians

SPARKS_KEPT = 1024
STRUCTURE_FIELDS = ("is_cell", "is_cell_proba", "structure_score", "sarcomerisation",
                    "directionality", "cell_source", "sarcomere_length_um", "orientation_order",
                    "area_um2", "x_um", "y_um")
#: columns of one per-cell row (summary.json "cells", store table ``cell_phenotypes``)
PHENOTYPE_COLUMNS: tuple[str, ...] = (
    "cell_id", *STRUCTURE_FIELDS, "n_sparks", "n_puffs", "n_waves", "spark_rate_hz",
    "sampled_area_um2", "sampled_length_um", "sparks_per_100um2_s", "sparks_per_100um_s",
    "amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms", "label", "confidence")


class CellPhenotypes:
    """Events of one stream per attributed cell; ``new_vote`` makes a fresh cell vote (the
    stream analyzer's :meth:`~engine.analyzer.StreamAnalyzer.new_cell_vote`) or is None."""

    def __init__(self, new_vote: Callable[[], CellVote | None] | None = None,
                 sparks_kept: int = SPARKS_KEPT) -> None:
        self.new_vote = new_vote
        self.sparks_kept = sparks_kept
        self.counts: dict[int, Counter] = {}
        self.sparks: dict[int, deque[Event]] = {}

    def add(self, events: Iterable[Event]) -> None:
        """Count attributed events (``cell`` = an id); unattributed ones are not kept."""
        for event in events:
            if not event.cell.isdigit():
                continue
            cell_id = int(event.cell)
            self.counts.setdefault(cell_id, Counter())[event.kind] += 1
            if event.kind == "spark":
                kept = self.sparks.setdefault(cell_id, deque(maxlen=self.sparks_kept))
                kept.append(event)

    def rows(self, cells: FieldCells, duration_s: float,
             attribution: Attribution | None = None) -> list[dict]:
        """One row per accepted cell of ``cells`` (:data:`PHENOTYPE_COLUMNS`); NaN / None
        where a value is not measured."""
        structure = {int(r["cell_id"]): r for r in cells.rows}
        sampled = attribution.sampled_sizes() if attribution is not None else {}
        line = attribution is not None and attribution.stream_kind.is_linescan
        template = self.new_vote() if self.new_vote is not None else None  # trust: once
        out = []
        for cell_id in cells.accepted_ids:
            row = {"cell_id": cell_id}
            row.update({name: _value(structure.get(cell_id, {}).get(name))
                        for name in STRUCTURE_FIELDS})
            row.update(self._phenotype(cell_id, duration_s, sampled.get(cell_id), line,
                                       template))
            out.append(row)
        return out

    def _phenotype(self, cell_id: int, duration_s: float, sampled: float | None,
                   line: bool, template: CellVote | None) -> dict:
        counts = self.counts.get(cell_id, Counter())
        sparks = list(self.sparks.get(cell_id, ()))
        n_sparks = counts["spark"]
        rate = n_sparks / duration_s if duration_s > 0 else math.nan
        per_100 = 100.0 * rate / sampled if sampled else math.nan
        label, confidence = _vote(template, sparks)
        return {
            "n_sparks": n_sparks, "n_puffs": counts["puff"], "n_waves": counts["wave"],
            "spark_rate_hz": rate,
            "sampled_area_um2": math.nan if line or sampled is None else sampled,
            "sampled_length_um": sampled if line and sampled is not None else math.nan,
            "sparks_per_100um2_s": math.nan if line else per_100,
            "sparks_per_100um_s": per_100 if line else math.nan,
            **parameter_medians(sparks), "label": label, "confidence": confidence,
        }



def _vote(template: CellVote | None, sparks: list[Event]) -> tuple[str | None, float]:
    """The cell's own vote, with the template's classifier, threshold and trust."""
    if template is None:
        return None, math.nan
    vote = CellVote(template.classifier, template.min_significance)
    vote.set_trust(template.trust, template.notes)
    for spark in sparks:
        vote.add(spark)
    summary = vote.summary()
    return summary.label, summary.confidence


def _value(value):
    """A structure value as stored; not measured (None, "") is NaN."""
    return math.nan if value is None or value == "" else value
