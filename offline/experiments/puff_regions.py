"""Do movie puffs and sparks differ in their regions? Duration, width and split count of every
spark-named region the default (hybrid) movie detector makes, against the class the truth gives
its pixels.

Diagnosis only (nothing is chosen here). Each region the tracker names ``spark`` (before it is
split into single sparks) is recorded with its duration (first to last frame), its largest width
(µm), how many pieces the spark splitting cuts it into, and the majority truth class of its
pixels (``bg`` when fewer than 30 % are events). It then counts, for a few duration/width
thresholds, how many puff and spark regions a rule "at least this long and this wide is a puff"
would name puff.

``python -m offline.experiments.puff_regions --n 16 --offset 8`` (development validation
movies, seeds ``DEV_VAL_SEED + offset``+; validation data only).
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter

import numpy as np

from engine import region_instances
from engine.instance_size import extent_um
from engine.instances import KIND_OF_CLASS, class_pieces
from engine.pipeline import analyze_array
from offline.devsim import DevSource
from offline.thresholds import DEV_VAL_SEED

log = logging.getLogger(__name__)

TRUTH = {1: "spark", 2: "wave", 3: "puff"}
RULES = [(d, w) for d in (60, 80, 100) for w in (2.5, 3.5)]


def spark_regions(recording) -> list[dict]:
    """The spark-named regions of one recording (module docstring), through the real tracker."""
    found: list[dict] = []
    original = region_instances.RegionInstances.instances

    def record(regions, region):
        pieces = class_pieces(region.probs, region.pixels, regions._stands_alone,
                              regions.gap_frames, regions._split_off,
                              regions.config.split_min_probability)
        start = region.context_start
        inner = tuple(slice(s.start - c, s.stop - c)
                      for s, c in zip(region.slices, start, strict=True))
        for cls, piece in pieces:
            if KIND_OF_CLASS[cls] != "spark" or not piece.any():
                continue
            t, y, x = np.nonzero(piece)
            slices = region.slices
            origin = (region.first + slices[0].start, slices[1].start, slices[2].start)
            truth = recording.class_mask[t + origin[0], y + origin[1], x + origin[2]]
            counts = np.bincount(truth, minlength=5)
            events = counts[1:4].sum()
            found.append({
                "duration_ms": float((t.max() - t.min() + 1) * regions.dt_ms),
                "width_um": extent_um(piece, regions.pixel_um, False),
                "pieces": int(regions._split(region.context, inner, piece).max()),
                "truth": TRUTH[int(np.argmax(counts[1:4])) + 1] if events >= 0.3 * t.size
                else "bg"})
        return original(regions, region)

    region_instances.RegionInstances.instances = record
    try:
        analyze_array(recording.data, recording.stream_kind, recording.pixel_um,
                      recording.dt_ms, chunk_frames=4, detector="auto")
    finally:
        region_instances.RegionInstances.instances = original
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="development validation movies")
    parser.add_argument("--offset", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    regions = [r for rec in DevSource(kind="movie", seed=DEV_VAL_SEED + args.offset).lazy(args.n)
               for r in spark_regions(rec)]
    log.info("spark-named regions by truth class: %s", dict(Counter(r["truth"] for r in regions)))
    log.info("of them cut into 2+ sparks: %s",
             dict(Counter(r["truth"] for r in regions if r["pieces"] >= 2)))
    for duration, width in RULES:
        named = Counter(r["truth"] for r in regions
                        if r["duration_ms"] >= duration and r["width_um"] >= width)
        log.info("rule >= %s ms and >= %s um names puff: %d puff regions, %d spark regions",
                 duration, width, named["puff"], named["spark"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
