"""Test-time flips: the network's probabilities averaged over mirror images, on validation data.

``python -m offline.experiments.network_flips --kind movie --n 16 --n-sim 4 --flips none xy``
runs the default (``auto``) detector on development validation recordings (seeds
``DEV_VAL_SEED``+) and the simulator's validation split (movies at raised wave and puff rates)
once per ``--flips`` variant and logs spark / puff / wave F1, recall and precision (IoMin) per
generator. A variant feeds every batch the network sees through onnxruntime also mirrored
along the named spatial axes (``x``: x; ``xy``: x, y and both) and averages the
probabilities mirrored back; ``none`` is the engine as shipped. A spark mirrored in space is
still a spark, so this is a test-time ensemble of the one network, at (1 + mirrors) times its
cost. Validation data only: no test seed is read. Nothing is adopted by this script.

Result (this machine, 2026-12-06, ``--kind movie --n 16 --n-sim 4 --flips none xy``; the
onnxruntime backend, which the default uses on a CPU): development spark / puff / wave F1
0.882 / 0.760 / 0.875 → 0.885 / 0.750 / 0.875, simulator 0.898 / 0.845 / 1.000 → 0.894 /
0.817 / 1.000; not adopted.
"""

from __future__ import annotations

import argparse
import logging
from unittest import mock

import numpy as np

from engine.backends import onnxruntime_backend
from offline.evaluate import evaluate
from offline.experiments.hybrid_patches import CLASSES, MODELS
from offline.experiments.validation import validation_sets

log = logging.getLogger(__name__)

#: the spatial axes of a ``(B, C, W, *spatial)`` batch each variant mirrors (movies: Y, X)
FLIPS = {"none": [()], "x": [(), (-1,)], "xy": [(), (-1,), (-2,), (-2, -1)]}


def flipped_predict(original, mirrors: list[tuple[int, ...]]):
    """A ``predict(self, batch)`` that averages ``original`` over ``mirrors`` of the batch."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        total = None
        for axes in mirrors:
            view = np.ascontiguousarray(np.flip(batch, axes)) if axes else batch
            probs = original(self, view)
            probs = np.flip(probs, axes) if axes else probs
            total = probs if total is None else total + probs
        return np.ascontiguousarray(total / len(mirrors), dtype=np.float32)

    return predict


def run(kind: str, n_dev: int, n_sim: int, flips: list[str]) -> dict[str, dict]:
    """``{"<generator> <variant>": scores}`` for each generator and ``--flips`` variant."""
    original = onnxruntime_backend.OnnxRuntimeBackend.predict
    out = {}
    for variant in flips:
        predict = flipped_predict(original, FLIPS[variant])
        with mock.patch.object(onnxruntime_backend.OnnxRuntimeBackend, "predict", predict):
            for name, recordings in validation_sets(kind, n_dev, n_sim).items():
                result = evaluate(recordings, MODELS[kind], detector="auto", progress=False)
                out[f"{name} {variant}"] = result.scores
                log.info("%s, flips %s: %s", name, variant, "  ".join(
                    f"{c} F1 {result.scores[c]['f1']:.3f} (R {result.scores[c]['recall']:.3f}, "
                    f"P {result.scores[c]['precision']:.3f})"
                    for c in CLASSES if c in result.scores))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(MODELS), default="movie")
    parser.add_argument("--n", type=int, default=16, help="development validation recordings")
    parser.add_argument("--n-sim", type=int, default=4, help="simulator validation recordings")
    parser.add_argument("--flips", nargs="+", choices=sorted(FLIPS), default=["none", "xy"])
    args = parser.parse_args(argv)
    if args.kind == "linescan" and "xy" in args.flips:
        parser.error("a line-scan's second axis is time, which has no mirror symmetry: "
                     "use --flips none x")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    run(args.kind, args.n, args.n_sim, args.flips)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
