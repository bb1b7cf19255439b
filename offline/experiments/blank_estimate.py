"""How far an estimated blank (detector offset) moves F0, on validation recordings whose true
offset is known (:mod:`engine.blank`).

``python -m offline.experiments.blank_estimate --kind linescan --n 48 --offset 1724 --n-sim 24``
estimates each recording's blank from its warm-up frames (the engine's 400 ms), twice: from the
darkest pixels alone (castream before :mod:`engine.blank`), and as the engine now does (dark
pixels where the field has them, else the photon transfer). For each it prints the factor by
which F0 is wrong,

    F0 factor = (median pixel mean − true offset) / (median pixel mean − estimated blank),

(> 1: F0 too small, every ΔF/F0 inflated by that factor; < 1: deflated), and per set the share
of recordings off by more than 20 % and the median |log factor|.

The constants of :mod:`engine.blank` were chosen on development validation line-scans
1700-1771 and confirmed on fresh seeds (line-scans ``--offset 1800``, movies ``--offset
1424``); every figure it gives is validation, never the test seeds.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

import numpy as np

from engine.blank import estimate_blank
from offline.experiments.validation import add_set_arguments, sets_from_arguments

log = logging.getLogger(__name__)

#: the engine's warm-up, over which it estimates the blank (``Preprocessor(warmup_ms=...)``)
WARMUP_MS = 400.0
#: an F0 off by more than this factor (either way) counts as wrong
TOLERANCE = 1.2


def f0_factor(median_counts: float, true_blank: float, blank: float) -> float:
    """True F0 over the F0 an estimated ``blank`` gives (``median_counts``: a typical pixel)."""
    return (median_counts - true_blank) / max(median_counts - blank, 1e-9)


def recording_row(rec) -> dict:
    """Both estimates of one recording and their F0 factors."""
    frames = np.asarray(rec.data)[: max(3, int(round(WARMUP_MS / rec.dt_ms)))]
    estimate = estimate_blank(frames)
    median = estimate.typical_counts
    return {"name": rec.name, "true": float(rec.blank), "dark": estimate.dark_counts,
            "chosen": estimate.counts, "source": estimate.source,
            "fit_sd": estimate.f0_relative_sd,
            "dark_factor": f0_factor(median, rec.blank, estimate.dark_counts),
            "chosen_factor": f0_factor(median, rec.blank, estimate.counts)}


def summary(rows: list[dict], key: str) -> dict:
    """Share of rows whose ``key`` factor is off by more than :data:`TOLERANCE`, and the
    median |log factor|."""
    logs = np.abs(np.log([max(row[key], 1e-9) for row in rows]))
    return {"off": float(np.mean(logs > math.log(TOLERANCE))), "median_abs_log": float(
        np.median(logs))}


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("linescan", "movie"), default="linescan")
    add_set_arguments(parser, 48, 24, "recordings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for name, recordings in sets_from_arguments(args, args.kind).items():
        rows = []
        for rec in recordings:
            row = recording_row(rec)
            rows.append(row)
            _say(f"{name:11s} {row['name']:24s} true {row['true']:7.1f}  dark {row['dark']:7.1f}"
                  f" (F0 x{row['dark_factor']:.2f})  chosen {row['chosen']:7.1f}"
                  f" (F0 x{row['chosen_factor']:.2f}, {row['source']}"
                 + (f", fit ±{100 * row['fit_sd']:.0f} %)" if row["fit_sd"] is not None else ")"))
        old, new = summary(rows, "dark_factor"), summary(rows, "chosen_factor")
        _say(f"{name}: {len(rows)} recordings; F0 off by > {100 * (TOLERANCE - 1):.0f} %: "
              f"darkest pixels {100 * old['off']:.1f} % -> engine {100 * new['off']:.1f} %; "
              f"median |log F0 factor| {old['median_abs_log']:.3f} -> "
              f"{new['median_abs_log']:.3f}; photon transfer used on "
              f"{sum(r['source'] == 'photon_transfer' for r in rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
