"""How detectable the development set's annotated sparks are at all, and which ones castream finds.

The development generator annotates every spark whose own peak ΔF/F0 is at least 0.1, whatever
the noise of the recording (:mod:`offline.devsim.truth`). At a resting SNR of 1–2 some of them
cannot be told from the noise by any detector. This experiment gives every annotated spark of
the development *validation* recordings (seeds ``DEV_VAL_SEED`` + ``offset``, never the test
seeds) an **ideal-observer z**: the signal-to-noise ratio of a matched filter that knows the
spark's noise-free shape and position exactly,

    z_ideal = sqrt( Σ s(t, x)² / σ(x)² )  over the spark's annotated pixels,

where ``s`` is the generator's noise-free ΔF/F0 there and ``σ(x)`` the ΔF/F0 noise SD of shot
and read noise at the resting brightness of that pixel (from the generator's own detector
parameters: ``σ = sqrt(g² p0 + r²) / (g p0)``, ``p0`` resting photons of the pixel; laser
flicker, bleaching and fixed-pattern noise are left out, so the bound is optimistic). No real
detector reaches it: it does not know where the spark is or what it looks like, so it must
pay for the search (a few noise SDs) — a spark with z_ideal ≲ 5 is at or below the limit of
any detector.

``python -m offline.experiments.detectability [--kind linescan] [--n 24] [--detector auto]``
runs the engine on each recording and prints the recall (a reported spark matching it,
IoMin, as ``castream evaluate`` counts) per z_ideal bin and per subtype inside each bin.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections import Counter, defaultdict

import numpy as np
from scipy import ndimage

from acquisition.labels import IGNORE
from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from engine.pipeline import analyze_array
from offline.devsim.generate import dev_params, generate
from offline.evaluate import true_classes
from offline.metrics import match_instances
from offline.thresholds import DEV_VAL_SEED

log = logging.getLogger(__name__)

#: upper edges of the z_ideal bins
BINS = (3.0, 5.0, 8.0, 12.0, 20.0, math.inf)


def ideal_z(dev) -> dict[int, float]:
    """``{event_id: z_ideal}`` for every annotated event of a :class:`DevRecording`."""
    det = dev.setup.detector
    gain, read = det.gain_counts_per_photon, det.read_noise_counts
    p0 = np.maximum(det.resting_photons * np.asarray(dev.layout.resting, np.float64), 1e-6)
    sigma = np.sqrt(gain ** 2 * p0 + read ** 2) / (gain * p0)  # per pixel, (X,) or (Y, X)
    snr2 = dev.truth.clean_dff0.astype(np.float64) ** 2 / sigma[None] ** 2  # (T, *spatial)
    ids = dev.truth.instance_mask
    event_ids = [int(event["event_id"]) for event in dev.truth.events]
    present = set(np.unique(ids).tolist())
    sums = ndimage.sum_labels(snr2, ids, index=event_ids)
    return {eid: float(math.sqrt(total))
            for eid, total in zip(event_ids, sums, strict=True) if eid in present}


def found_sparks(rec, events, labels) -> set[int]:
    """Ids of the annotated sparks a reported spark matches (the evaluation's IoMin rule)."""
    pred_classes = {int(ev.event_id): ev.kind for ev in events}
    ignore = rec.class_mask == IGNORE
    matching = match_instances(rec.instance_mask, true_classes(rec), np.asarray(labels),
                               pred_classes, ignore_mask=ignore if ignore.any() else None)
    return {tid for tid, pid in matching.pairs if matching.pred_classes.get(pid) == "spark"}


def bin_of(z: float) -> str:
    lo = 0.0
    for hi in BINS:
        if z < hi:
            return f"{lo:g}-{hi:g}"
        lo = hi
    return f">{lo:g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("linescan", "movie"), default="linescan")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--detector", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    kind = StreamKind.from_model_kind(args.kind)
    model = default_model_path(kind, "accurate")
    params = dev_params(args.kind)
    counts: dict[str, Counter] = defaultdict(Counter)
    for i in range(args.n):
        seed = DEV_VAL_SEED + args.offset + i
        dev = generate(params, seed, name=f"dev-{args.kind}-{seed}")
        rec = dev.recording
        result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                               model_dir=model, blank=rec.blank, detector=args.detector)
        found = found_sparks(rec, result.events, result.labels)
        zs = ideal_z(dev)
        sparks = [e for e in rec.events if e["kind"] == "spark"]
        for e in sparks:
            key = bin_of(zs.get(int(e["event_id"]), 0.0))
            hit = int(e["event_id"]) in found
            counts[key]["n"] += 1
            counts[key]["found"] += hit
            counts[key][f"n {e.get('subtype', '?')}"] += 1
            counts[key][f"found {e.get('subtype', '?')}"] += hit
        median = float(np.median([zs.get(int(e["event_id"]), 0.0) for e in sparks])) \
            if sparks else math.nan
        log.info("%s: %d sparks, %d found, median z_ideal %.1f", rec.name, len(sparks),
                 sum(int(e["event_id"]) in found for e in sparks), median)
    total = sum(c["n"] for c in counts.values())
    log.info("z_ideal bin | sparks | share | recall | by subtype (found/n)")
    for lo_hi in sorted(counts, key=lambda k: float(k.lstrip(">").split("-")[0])):
        c = counts[lo_hi]
        subtypes = sorted(k[2:] for k in c if k.startswith("n "))
        log.info("%s | %d | %.1f %% | %.1f %% | %s", lo_hi, c["n"], 100 * c["n"] / total,
                 100 * c["found"] / c["n"],
                 ", ".join(f"{s} {c['found ' + s]}/{c['n ' + s]}" for s in subtypes))
    found = sum(c["found"] for c in counts.values())
    log.info("all: %d sparks, recall %.1f %%", total, 100 * found / max(total, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
