"""Waves in the low-latency line-scan model: a spark region as wide as a wave is a wave.

The low-latency line-scan model runs its network alone (no classical detector, so no classical
wave rule). On 48 development validation line-scans (seeds 10,001,996+; ``python -m
offline.experiments.wave_duration --n 48 --offset 1996 --n-sim 24 --mode low_latency``) it
predicted 2 waves, wave F1 0.250, against 0.923 for the accurate model on another fresh set:
within its short windows (144 lines) the network sees a wave's plateau and names it spark. The
accurate model's hybrid names a spark piece whose front reaches ``wide_spark_is_wave_um``
(15 µm) within one frame a wave (``TrackerConfig.wide_spark_is_wave_um``; no spark is that
wide); the low-latency model does not set it.

``python -m offline.experiments.low_latency_waves [--n 48] [--offset 2044] [--n-sim 24]
[--widths 15]`` evaluates the low-latency model as shipped and with each width on validation
line-scans of both generators (never test seeds) and logs spark and wave F1 (one-to-one in
brackets) per generator.
"""

from __future__ import annotations

import argparse
import logging

from acquisition.stream_kind import StreamKind
from engine.models.model_dir import default_model_path
from engine.models.postprocess_file import PostprocessParams
from offline.evaluate import evaluate
from offline.experiments.validation import add_set_arguments, sets_from_arguments

log = logging.getLogger(__name__)


def with_width(params: PostprocessParams, width_um: float | None) -> PostprocessParams:
    """``params`` with the network tracker's ``wide_spark_is_wave_um`` set (None: as is)."""
    if width_um is None:
        return params
    return params.with_override("network", "wide_spark_is_wave_um", width_um,
                                "python -m offline.experiments.low_latency_waves")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_arguments(parser, 48, 24, "line-scans")
    parser.add_argument("--widths", default="15", help="comma-separated widths (µm)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = default_model_path(StreamKind.LINESCAN, "low_latency")
    shipped = PostprocessParams.load(model)
    widths = [None, *(float(w) for w in args.widths.split(",") if w)]
    for name, recordings in sets_from_arguments(args, "linescan").items():
        recordings = list(recordings)
        for width in widths:
            result = evaluate(recordings, model, "low_latency", "auto", progress=False,
                              postprocess=with_width(shipped, width))
            one = result.one_to_one
            log.info("%s, wide_spark_is_wave_um %s: %s", name,
                     "off" if width is None else f"{width:g}",
                     " ".join(f"{cls} {result.scores.get(cls, {}).get('f1', float('nan')):.3f}"
                              f" ({one.get(cls, {}).get('f1', float('nan')):.3f})"
                              for cls in ("spark", "wave")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
