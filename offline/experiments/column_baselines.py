"""Per-column baselines before the spatial profile (``column_baseline_gap_ms``,
:func:`engine.characterize.column_baselines`): characterization errors with and without.

``python -m offline.experiments.column_baselines [--photons 1000] [--n 2]`` simulates ``--n``
movies of the training simulator at ``--photons`` resting photons per pixel (its validation
seeds, 1,000,000+; at the default 10 photons shot noise hides the fixed pattern, at 1,000 it
dominates), runs the default detector once per setting and prints the median relative error
and bias of the five parameters against the noise-free truth. ``--kind linescan`` does the
same for line-scans. ``--validation`` runs the development and simulator validation recordings
instead (``--n-dev``, ``--n-sim``; :func:`offline.experiments.validation.validation_sets`), at
the generators' own photon counts. No test seed is read.

Why: the engine's ΔF/F0 divides by an F0 smoothed in space, so the resting pattern
(striations, edges) stays in it as a fixed multiplicative pattern, constant in time. The
spatial profile through an event's peak carries it, and the width fitted to it bends.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from acquisition.simulate import LinescanParams, MovieParams, simulate_linescan, simulate_movie
from acquisition.simulate.params import OpticsParams
from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from engine.models.postprocess_file import PostprocessParams
from offline.datasets import LabeledRecording
from offline.evaluate import evaluate
from offline.experiments.validation import validation_sets

log = logging.getLogger(__name__)
VAL_SEED = 1_000_000


def recordings(kind: StreamKind, photons: float, n: int) -> list[LabeledRecording]:
    optics = OpticsParams(resting_photons=photons)
    if kind is StreamKind.MOVIE:
        made = [simulate_movie(MovieParams(optics=optics), seed=VAL_SEED + i) for i in range(n)]
    else:
        made = [simulate_linescan(LinescanParams(optics=optics), seed=VAL_SEED + i)
                for i in range(n)]
    return [LabeledRecording.from_simulation(rec, f"val{i}") for i, rec in enumerate(made)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("movie", "linescan"), default="movie")
    parser.add_argument("--photons", type=float, default=1000.0)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--validation", action="store_true",
                        help="the validation recordings of both generators instead")
    parser.add_argument("--n-dev", type=int, default=8)
    parser.add_argument("--n-sim", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    kind = StreamKind.from_model_kind(args.kind)
    model = default_model_path(kind, "accurate")
    shipped = PostprocessParams.load(model)
    if args.validation:
        sets = {name: list(recs) for name, recs in
                validation_sets(args.kind, args.n_dev, args.n_sim).items()}
    else:
        sets = {f"{args.photons:g} photons": recordings(kind, args.photons, args.n)}
    for name, recs in sets.items():
        for gap in (None, shipped.characterize.column_baseline_gap_ms or 5.0):
            params = dataclasses.replace(shipped, characterize=dataclasses.replace(
                shipped.characterize, column_baseline_gap_ms=gap))
            result = evaluate(recs, model, detector="auto", progress=False, postprocess=params)
            label = "without" if gap is None else f"with (gap {gap:g} ms)"
            cells = "  ".join(f"{key.split('_')[0]} {v['median_rel_error'] * 100:.1f} % "
                              f"({v['median_bias'] * 100:+.1f} %, n {v['n']})"
                              for key, v in result.characterization.items())
            log.info("%s, %s, %s: %s", args.kind, name, label, cells)


if __name__ == "__main__":
    main()
