"""``castream simulate``: simulated confocal recordings with ground truth.

Writes, per cell k (seed = ``--seed`` + k), ``STEM.tif``, ``STEM_class_label.tif``,
``STEM_event_label.tif`` and ``STEM_events.csv`` (or Dotti's ``NN_video.tif`` layout with
``--dotti``), and can stream each recording live to an ingest endpoint.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from acquisition.stream_kind import StreamKind

from ._curve_args import add_curve_client_arguments, curve_client

HELP = "simulate line-scans or movies of Ca2+ sparks/puffs/waves with ground truth"
log = logging.getLogger("castream.simulate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=[kind.value for kind in StreamKind.time_series()],
                        default=StreamKind.LINESCAN.value)
    parser.add_argument("--phenotype", choices=("wt", "cpvt"), default="wt")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration per recording (s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first cell")
    parser.add_argument("--n-cells", type=int, default=1, help="recordings (seeds seed..seed+K-1)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--dotti", action="store_true", help="write NN_video.tif layout")
    parser.add_argument("--brightness", type=float, default=None,
                        help="resting photons per pixel (sets the SNR)")
    parser.add_argument("--read-noise", type=float, default=None, help="read noise (counts SD)")
    parser.add_argument("--blank", type=float, default=None, help="offset (counts)")
    parser.add_argument("--bleach-tau-s", type=float, default=None, help="bleaching time constant")
    parser.add_argument("--spark-rate", type=float, default=None,
                        help="sparks per 100 um per s (default: phenotype preset)")
    parser.add_argument("--stream-to", default=None, help="ZeroMQ endpoint to stream to")
    parser.add_argument("--rate", type=float, default=1.0, help="streaming speed (x real time)")
    add_curve_client_arguments(parser)
    parser.add_argument("--stream", default=None,
                        help="stream id when streaming (default: the cell id; with several "
                        "cells, used as prefix STREAM-1, STREAM-2, ...)")
    parser.add_argument("--send-timeout-ms", type=int, default=None,
                        help="give up streaming when the ingest does not take data this long")
    parser.add_argument("--ack-timeout-s", type=float, default=5.0,
                        help="give up streaming when the receiver stays silent this long "
                        "(default: %(default)s)")


def _params(args: argparse.Namespace):
    from acquisition.simulate import PHENOTYPES, LinescanParams, MovieParams

    cls = LinescanParams if StreamKind(args.mode).is_linescan else MovieParams
    params = cls(phenotype=args.phenotype, duration_s=args.seconds)
    changes = {"resting_photons": args.brightness, "read_noise_counts": args.read_noise,
               "blank_counts": args.blank, "bleach_tau_s": args.bleach_tau_s}
    optics = replace(params.optics, **{k: v for k, v in changes.items() if v is not None})
    stats = PHENOTYPES[args.phenotype]
    if args.spark_rate is not None:
        stats = replace(stats, spark_rate_per_100um_s=args.spark_rate)
    return replace(params, optics=optics, stats=stats)


def _publisher_factory(args: argparse.Namespace, rec, k: int):
    from acquisition.publisher import Publisher

    stream = rec.cell
    if args.stream:
        stream = args.stream if args.n_cells == 1 else f"{args.stream}-{k + 1}"
    curve = curve_client(args)
    return lambda: Publisher(args.stream_to, stream=stream,
                             send_timeout_ms=args.send_timeout_ms,
                             ack_timeout_ms=int(args.ack_timeout_s * 1000), curve=curve)


def _stream(rec, factory, rate: float) -> bool:
    """Stream one recording; a receiver that is absent, refuses or does not record it all
    is one error line (the recording stays on disk), not a traceback or a false success."""
    from acquisition.publisher import PublisherError
    from acquisition.simulate import stream_recording

    try:
        stream_recording(rec, factory, rate=rate)
    except (PublisherError, TimeoutError) as exc:
        log.error("streaming %s failed: %s", rec.cell, exc)
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from acquisition.simulate import (
        simulate_linescan,
        simulate_movie,
        write_dotti_folder,
        write_recording,
    )

    if args.n_cells < 1 or args.seconds <= 0:
        raise ValueError("--n-cells must be >= 1 and --seconds > 0")
    params = _params(args)
    simulate = simulate_linescan if StreamKind(args.mode).is_linescan else simulate_movie
    recs = []
    for k in range(args.n_cells):
        rec = simulate(params, seed=args.seed + k)
        if args.dotti:
            recs.append(rec)
        else:
            paths = write_recording(rec, args.out, f"{rec.cell}")
            log.info("%s: %s -> %s", rec.cell, rec.counts_by_kind(), paths["data"])
        if args.stream_to and not _stream(rec, _publisher_factory(args, rec, k), args.rate):
            return 1
    if args.dotti:
        for rec, paths in zip(recs, write_dotti_folder(recs, args.out), strict=True):
            log.info("%s: %s -> %s", rec.cell, rec.counts_by_kind(), paths["data"])
    return 0
