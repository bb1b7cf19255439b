"""Sparks too brief or too narrow to be sparks, chosen on validation recordings.

A Ca²⁺ spark lasts tens of milliseconds and spreads over a micrometre or more: in both
generators no annotated spark has an FDHM under 20 ms or a FWHM under 1.3 µm (16 validation
line-scans each; :mod:`offline.devsim`, :mod:`acquisition.simulate`). Lumps of noise that a
recorded spark shape carries (:mod:`offline.devsim.template_noise`), and flicker or shot noise
that clears the significance floor, are shorter or narrower. ``python -m
offline.experiments.spark_minimum_size --n 24 --n-sim 8 --template-noise 0.1,0.3`` runs the
default detector once per validation recording (development, the same development recordings
with the template noise, simulator; never a test seed) and rescores its events with every
pair of floors of :data:`GRID` applied: a spark whose reported FDHM (ms) or FWHM (µm) is
finite and below its floor is dropped, its pixels with it. It prints spark F1 (IoMin and
one-to-one) per set and ranks the pairs by the mean one-to-one spark F1 over the sets.
"""

from __future__ import annotations

import argparse
import itertools
import logging

import numpy as np

from engine.spark_size import too_small
from offline.experiments.hybrid_patches import MODELS
from offline.experiments.rescore import rescore
from offline.experiments.validation import (
    add_set_arguments,
    add_template_noise_argument,
    sets_from_arguments,
)

log = logging.getLogger(__name__)

#: (FDHM floors in ms, FWHM floors in µm); None: no floor
GRID = ((None, 5.0, 8.0, 10.0, 12.0, 15.0), (None, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0))


def floors(min_fdhm_ms: float | None, min_fwhm_um: float | None):
    """The rescoring variant dropping the sparks :func:`engine.spark_size.too_small` names
    (on the events as reported, so values the sampling cannot resolve are empty already)."""
    def variant(events, labels, recording):
        dropped = {e.event_id for e in events
                   if too_small(e.to_dict(), min_fdhm_ms, min_fwhm_um)}
        if not dropped:
            return events, labels
        kept = [e for e in events if e.event_id not in dropped]
        return kept, np.where(np.isin(labels, list(dropped)), 0, labels)
    return variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_arguments(parser, 24, 8, "line-scans")
    add_template_noise_argument(parser)
    parser.add_argument("--top", type=int, default=12, help="pairs printed")
    parser.add_argument("--only", type=float, nargs=2, default=None, metavar=("FDHM", "FWHM"),
                        help="score only no floors and these two (confirming a choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    data = sets_from_arguments(args, "linescan")
    pairs = [(None, None), tuple(args.only)] if args.only else itertools.product(*GRID)
    variants = {pair: floors(*pair) for pair in pairs}
    results = {name: rescore(recordings, MODELS["linescan"], {}, variants)
               for name, recordings in data.items()}
    rows = []
    for pair in variants:
        once = [results[name][pair].one_to_one["spark"]["f1"] for name in data]
        rows.append((float(np.mean(once)), pair))
    rows.sort(key=lambda r: -r[0])
    for mean, pair in [r for r in rows if r[1] == (None, None)] + rows[: args.top]:
        cells = "; ".join(
            f"{name}: {results[name][pair].scores['spark']['f1']:.3f} "
            f"({results[name][pair].one_to_one['spark']['f1']:.3f}, "
            f"P {results[name][pair].one_to_one['spark']['precision']:.3f}, "
            f"R {results[name][pair].one_to_one['spark']['recall']:.3f})" for name in data)
        log.info("FDHM ≥ %s ms, FWHM ≥ %s µm: mean one-to-one %.4f | %s", pair[0], pair[1], mean,
                 cells)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
