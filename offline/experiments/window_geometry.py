"""Longer hops between network windows: less network work per frame, the same detections?

The network sees every frame in ``frames / hop`` windows; with margins kept, a longer hop (and
window) cuts that work at the price of look-ahead (``margin_right + hop - 1`` frames). The
network is fully convolutional, so the kept frames of a longer window see at least the same
context. ``python -m offline.experiments.window_geometry --kind linescan --n-dev 24 --n-sim 12
--geometries '[null, {"frames": 512, "hop": 384, "margin_left": 64, "margin_right": 64}]'``
runs the default (``auto``) detector on development and simulator *validation* recordings with
each accurate-mode geometry (``null``: as shipped) and prints spark / puff / wave F1 (IoMin,
one-to-one in brackets) and the five parameters' median errors. No test seed is read.

Results (this machine, 2026-12-05; line-scans, 24 development + 12 simulator validation
recordings):

==============================  ========================================  =====================
geometry (frames/hop/margins)   development spark F1, errors amp/FWHM/…   simulator spark / puff
==============================  ========================================  =====================
256 / 128 / 64+64 (before)      0.932 (0.899); 11.1/13.3/10.8/25.3/17.3   0.975 / 0.900
512 / 384 / 64+64 (adopted)     0.932 (0.899); 11.2/13.3/10.8/25.3/17.3   0.975 / 0.900
640 / 512 / 64+64               0.932 (0.899); 11.2/13.3/10.8/25.3/17.2   0.975 / 0.900
==============================  ========================================  =====================

Again on 2026-12-07, for the soak's lag (issue 12: lag under 1 s, missed at 1.10 s in 30
minutes with 512/384; same command, the shipped engine of that day, ``--geometries '[null,
{"frames": 384, "hop": 256, "margin_left": 64, "margin_right": 64}]'``):

==============================  ========================================  =====================
geometry (frames/hop/margins)   development spark F1, errors amp/FWHM/…   simulator spark / wave
==============================  ========================================  =====================
512 / 384 / 64+64 (shipped)     0.963 (0.937); 9.6/13.0/10.7/21.2/16.5    0.987 / 1.000
384 / 256 / 64+64               0.963 (0.936); 9.5/13.1/10.7/21.2/16.6    0.987 / 1.000
==============================  ========================================  =====================

The network's CPU time per line (onnxruntime, one thread, one 512-px window, median of 12):
256/128 0.444 ms, 512/384 0.320 ms (−28 %), 640/512 0.291 ms (−34 %). 512/384 was adopted for
the packaged line-scan model's accurate mode: look-ahead 447 lines (0.67 s at 1.5 ms/line,
under Dotti et al.'s 0.76 s) instead of 191, where 640/512 would need 575 (0.86 s).

Movies (``--kind movie``; 24 development validation movies, 4 simulator ones at raised rates):
64/32 (shipped) spark / puff / wave 0.871 (0.850) / 0.662 (0.642) / 0.889 (0.640) (the
``space+time`` row of :mod:`offline.experiments.network_resampling`); 96/64/16+16 0.867 (0.847)
/ 0.675 (0.654) / 0.889 (0.640); 128/96/16+16 0.867 (0.846) / 0.675 (0.654) / 0.889 (0.640);
simulator 0.898 / 0.821 / 1.000 with 64/32 and with 96/64. Per frame the movie network costs
14.3 ms (64/32), 12.1 ms (96/64) and 13.4 ms (128/96) on one thread, so a mixed change for at
most 15 % of the network: movie windows stay 64/32.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from offline.evaluate import evaluate
from offline.experiments.hybrid_patches import MODELS
from offline.experiments.validation import model_copy, validation_sets

log = logging.getLogger(__name__)

CLASSES = ("spark", "puff", "wave")
PARAMETERS = ("amplitude_dff0", "fwhm_um", "fdhm_ms", "rise_ms", "t50_ms")


def with_geometry(model: Path, geometry: dict | None, into: Path, name: str,
                  mode: str = "accurate") -> Path:
    """A copy of ``model`` whose ``mode`` window is ``geometry`` (None: as it is)."""
    def change(config: dict) -> None:
        if mode not in config["window"]:
            raise ValueError(f"{model} has no {mode!r} window")
        config["window"][mode] = dict(geometry)

    return model_copy(model, into, name, None if geometry is None else change)


def line(result) -> str:
    scores = " / ".join(f"{c} {result.scores[c]['f1']:.3f} ({result.one_to_one[c]['f1']:.3f})"
                        for c in CLASSES)
    errors = "/".join(f"{100 * result.characterization.get(p, {}).get('median_rel_error', float('nan')):.1f}"
                      for p in PARAMETERS)
    return f"{scores}; errors % {errors}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(MODELS), default="linescan")
    parser.add_argument("--n-dev", type=int, default=24)
    parser.add_argument("--n-sim", type=int, default=12)
    parser.add_argument("--geometries", type=json.loads, default=[None])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    counts = {"development": args.n_dev, "simulator": args.n_sim}
    with tempfile.TemporaryDirectory() as tmp:
        for index, geometry in enumerate(args.geometries):
            model = with_geometry(MODELS[args.kind], geometry, Path(tmp), f"g{index}")
            for name, recordings in validation_sets(args.kind, args.n_dev, args.n_sim).items():
                if counts[name]:
                    result = evaluate(recordings, model, detector="auto", progress=False)
                    log.info("%s, %s: %s", geometry or "shipped", name, line(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
