"""Evaluate patches of a model's ``hybrid.json`` on validation recordings of both generators.

Each patch is a JSON object merged into a copy of the model's ``hybrid.json`` (a ``classical``
object is merged key by key, so ``{"classical": {"wave_spread_ms": 30}}`` keeps the tuned
``k_detect``; a ``tracker`` object goes into ``postprocess.json``'s tracker overrides of the
hybrid, e.g. ``{"tracker": {"split_min_probability": 0.5}}``, and a ``thresholds`` object
into the network's ``thresholds.json``, e.g. ``{"thresholds": {"foreground": 0.8}}``); ``null``
is the model as shipped. Every variant runs the default (``auto``)
detector through :func:`offline.evaluate.evaluate` on development validation recordings (seeds
``DEV_VAL_SEED``+) and on the simulator's validation split (movies at raised wave/puff rates, so
every class is scored); the score of a variant is the mean over the two generators of the mean
class F1 (IoMin). Validation data only: the test seeds are never read.

``python -m offline.experiments.hybrid_patches --n 16 --n-sim 4 --patches '[null,
{"classical": {"wave_spread_ms": 30}}]'``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path

from offline.evaluate import evaluate
from offline.experiments.validation import validation_sets

log = logging.getLogger(__name__)

MODELS = {"movie": Path("engine/models/default/movie"),
          "linescan": Path("engine/models/default/linescan-accurate")}
CLASSES = ("spark", "puff", "wave")


def patched(model: Path, patch: dict | None, into: Path, name: str) -> Path:
    """A copy of ``model`` whose ``hybrid.json`` has ``patch`` merged in."""
    copy = into / name
    shutil.copytree(model, copy)
    path = copy / "hybrid.json"
    params = json.loads(path.read_text())
    for key, value in (patch or {}).items():
        if key == "classical":
            params["classical"] = {**params.get("classical", {}), **value}
        elif key == "tracker":
            post_path = copy / "postprocess.json"
            post = json.loads(post_path.read_text())
            overrides = post.setdefault("tracker_overrides", {})
            overrides["hybrid"] = {**overrides.get("hybrid", {}), **value}
            post_path.write_text(json.dumps(post, indent=2))
        elif key == "thresholds":
            thr_path = copy / "thresholds.json"
            thr_path.write_text(json.dumps({**json.loads(thr_path.read_text()), **value},
                                           indent=2))
        else:
            params[key] = value
    path.write_text(json.dumps(params, indent=2))
    return copy


def score(model: Path, kind: str, n_dev: int, n_sim: int,
          offset: int = 0) -> tuple[float, str, dict]:
    """Mean over the generators of the mean class F1, a one-line summary, and the scores
    (development validation seeds from ``DEV_VAL_SEED + offset``)."""
    means, parts, scores = [], [], {}
    counts = {"development": n_dev, "simulator": n_sim}
    for name, recordings in validation_sets(kind, n_dev, n_sim, offset).items():
        if not counts[name]:
            continue
        result = evaluate(recordings, model, detector="auto", progress=False)
        f1 = [result.scores[c]["f1"] for c in CLASSES if not math.isnan(result.scores[c]["f1"])]
        means.append(sum(f1) / len(f1))
        scores[name] = {c: (result.scores[c]["f1"], result.one_to_one[c]["f1"]) for c in CLASSES}
        parts.append(f"{name} " + " / ".join(
            f"{c} {result.scores[c]['f1']:.3f} ({result.one_to_one[c]['f1']:.3f})"
            for c in CLASSES))
    return sum(means) / len(means), "; ".join(parts), scores


def run(patches: list[dict | None], kind: str, n_dev: int, n_sim: int,
        offset: int = 0, model_dir: Path | None = None) -> list[dict]:
    """Each patch's score (logged as it comes); the best is logged last. ``model_dir``:
    the model patched (default: the packaged model of ``kind``)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="castream-hybrid-") as tmp:
        for i, patch in enumerate(patches):
            model = patched(model_dir or MODELS[kind], patch, Path(tmp), f"variant-{i}")
            mean, summary, scores = score(model, kind, n_dev, n_sim, offset)
            log.info("%s: %s; mean class F1 %.4f", json.dumps(patch), summary, mean)
            rows.append({"patch": patch, "mean": mean, "scores": scores})
    best = max(rows, key=lambda r: r["mean"])
    log.info("best: %s (mean class F1 %.4f)", json.dumps(best["patch"]), best["mean"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(MODELS), default="movie")
    parser.add_argument("--n", type=int, default=16, help="development validation recordings")
    parser.add_argument("--n-sim", type=int, default=4, help="simulator validation recordings")
    parser.add_argument("--offset", type=int, default=0,
                        help="first development validation seed after DEV_VAL_SEED (fresh "
                             "recordings to confirm a choice)")
    parser.add_argument("--patches", type=json.loads, default=[None],
                        help="JSON list of hybrid.json patches (null: as shipped)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model directory to patch (default: the packaged model of --kind)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(args.patches, args.kind, args.n, args.n_sim, args.offset, args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
