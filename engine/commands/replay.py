"""``castream replay``: stream TIFF recordings into an ingest as if acquired live."""

from __future__ import annotations

import argparse
import logging

from ._curve_args import add_curve_client_arguments, curve_client

HELP = "replay TIFF recordings (line-scans or movies) into a castream ingest over ZeroMQ"

log = logging.getLogger("castream.replay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="TIFF files (ImageJ/OME/LSM)")
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555",
                        help="ingest address (default: %(default)s)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=float, default=1.0,
                       help="playback speed, 1 = real time, 2 = twice as fast (default: 1)")
    speed.add_argument("--fast", action="store_true", help="send as fast as the ingest takes it")
    parser.add_argument("--stream", help="stream id (default: file name; with several files, "
                        "used as prefix: STREAM-1, STREAM-2, ...)")
    parser.add_argument("--pixel-um", type=float, help="pixel size in µm (overrides metadata)")
    parser.add_argument("--dt-ms", type=float,
                        help="line/frame interval in ms (overrides metadata)")
    parser.add_argument("--blank", type=float, help="camera/PMT offset in counts")
    parser.add_argument("--chunk-lines", type=int, default=64,
                        help="line-scan lines per message (default: %(default)s)")
    parser.add_argument("--frames-per-message", type=int, default=1,
                        help="movie frames per message (default: %(default)s)")
    parser.add_argument("--send-timeout-ms", type=int, default=None,
                        help="fail instead of waiting forever when the ingest does not take data")
    parser.add_argument("--ack-timeout-s", type=float, default=5.0,
                        help="fail when the receiver stays silent this long (nothing listening, "
                        "crashed); a busy receiver sends heartbeats (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_curve_client_arguments(parser)


def _stream_ids(args: argparse.Namespace) -> list[str | None]:
    if not args.stream:
        return [None] * len(args.files)
    if len(args.files) == 1:
        return [args.stream]
    return [f"{args.stream}-{i + 1}" for i in range(len(args.files))]


def run(args: argparse.Namespace) -> int:
    """Replay every file concurrently (one publisher each, like several microscopes)."""
    from concurrent.futures import ThreadPoolExecutor

    from acquisition.replay import replay_file

    curve = curve_client(args)

    def replay_one(index: int, path: str, stream: str | None):
        return replay_file(
            path, args.endpoint, stream=stream, rate=None if args.fast else args.rate,
            chunk_lines=args.chunk_lines, frames_per_message=args.frames_per_message,
            pixel_um=args.pixel_um, dt_ms=args.dt_ms, blank=args.blank,
            progress=not args.no_progress, send_timeout_ms=args.send_timeout_ms,
            progress_position=index, ack_timeout_ms=int(args.ack_timeout_s * 1000),
            curve=curve,
        )

    jobs = list(zip(range(len(args.files)), args.files, _stream_ids(args), strict=True))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(replay_one, *job) for job in jobs]
        failures = 0
        for (_, path, _), future in zip(jobs, futures, strict=True):
            try:
                summary = future.result()
            except (OSError, ValueError, TimeoutError) as exc:
                failures += 1
                log.error("%s: %s", path, exc)
                continue
            log.info("%s -> stream %r: %d %ss in %.2f s (%.0f/s); %s", path, summary.stream,
                     summary.items_sent, summary.stream_kind.item_name,
                     summary.seconds, summary.items_per_s, summary.delivery.describe())
    return 1 if failures else 0
