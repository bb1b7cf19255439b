"""How significant the waves the default detector reports are: real waves against noise.

``python -m offline.experiments.wave_significance [--kind movie] [--n 32] [--offset 0]
[--n-sim 8]`` runs the default (``auto``) detector, its ``wave_min_significance`` floor
removed (a copy of the model directory), on development validation recordings (seeds
``DEV_VAL_SEED`` + ``offset``) and on the simulator's validation split (movies at raised wave
and puff rates), never the test seeds. Each event it names wave is **real** when its mask
overlaps an annotated wave, else **no wave**; the log has one line per predicted wave and the
range of significances of each group, which is what a floor for waves is chosen between.

Result (this machine, 2026-12-05, movies, ``--n 32 --offset 64 --n-sim 8``; the eighth
simulator movie was killed for memory beside other work, a throw-away script of the same logic
gave its one wave 38.7, real): 19 real waves at significance 27.9–138.1, the 4 waves that
matched no annotated wave (noise patches of two dim
development recordings, their mean 4–12 counts above the blank) at 7.3–10.4; the movie model's
``wave_min_significance`` 15 (``hybrid.json``) lies between.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from pathlib import Path

import numpy as np

from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from engine.pipeline import analyze_array
from offline.datasets import LabeledRecording
from offline.evaluate import true_classes
from offline.experiments.hybrid_patches import patched
from offline.experiments.missed_sparks import kinds_under
from offline.experiments.validation import validation_sets

log = logging.getLogger(__name__)


def wave_rows(rec: LabeledRecording, events, labels: np.ndarray) -> list[tuple[int, float, bool]]:
    """``(event_id, significance, real)`` of each event named wave; real: its mask overlaps
    an annotated wave."""
    classes = true_classes(rec)
    labels = np.asarray(labels)
    rows = []
    for ev in events:
        if ev.kind != "wave":
            continue
        real = "wave" in kinds_under(rec, classes, labels, int(ev.event_id))
        rows.append((int(ev.event_id), float(ev.significance), real))
    return rows


def summary(rows: list[tuple[str, int, float, bool]]) -> str:
    """One line: how many waves of each group and the range of their significances."""
    parts = []
    for real, name in ((True, "real"), (False, "no wave")):
        sig = [s for _, _, s, r in rows if r is real and math.isfinite(s)]
        parts.append(f"{name}: {len(sig)}" + (f", significance {min(sig):.1f}–{max(sig):.1f}"
                                               if sig else ""))
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("linescan", "movie"), default="movie")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--n-sim", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    model = default_model_path(StreamKind.from_model_kind(args.kind), "accurate")
    rows: list[tuple[str, int, float, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        open_model = patched(model, {"wave_min_significance": None}, Path(tmp), "no-floor")
        for recordings in validation_sets(args.kind, args.n, args.n_sim, args.offset).values():
            for rec in recordings:
                result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                                       model_dir=open_model, blank=rec.blank, detector="auto")
                for event_id, sig, real in wave_rows(rec, result.events, result.labels):
                    rows.append((rec.name, event_id, sig, real))
                    log.info("%s wave %d: significance %.1f, %s", rec.name, event_id, sig,
                             "real" if real else "no wave")
    log.info("%s", summary(rows))


if __name__ == "__main__":
    main()
