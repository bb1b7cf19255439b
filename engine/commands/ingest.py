"""``castream ingest``: a standalone ingest that records streams and reports on them."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from acquisition.ingest_idle import DEFAULT_STREAM_IDLE_TIMEOUT_S

from ._curve_args import add_curve_server_arguments

HELP = "receive streams, record them raw (TIFF + JSON per stream) and print per-stream counts"

log = logging.getLogger("castream.ingest")

_COLUMNS = [(key, heading, str) for key, heading in (
    ("stream", "stream"), ("state", "state"), ("messages", "msgs"),
    ("frames_received", "received"), ("frames_recorded", "recorded"),
    ("missing_frames", "missing"), ("duplicates", "dup"), ("out_of_order", "ooo"),
    ("errors", "errors"))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555",
                        help="address to bind (default: %(default)s, localhost only)")
    parser.add_argument("--record-dir", default="castream-data/raw",
                        help="directory for recordings (default: %(default)s)")
    parser.add_argument("--no-record", action="store_true", help="do not record")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--streams", type=int,
                        help="stop once this many streams have stopped")
    parser.add_argument("--queue-size", type=int, default=1024, help="analysis queue bound")
    parser.add_argument("--stream-idle-timeout-s", type=float,
                        default=DEFAULT_STREAM_IDLE_TIMEOUT_S,
                        help="close a stream whose publisher sent nothing for this long and mark "
                             "it abandoned (recording finalized); 0 = never (default: "
                             "%(default)s)")
    parser.add_argument("--policy", choices=("block", "fail"), default="block",
                        help="when the queue is full (default: %(default)s)")
    add_curve_server_arguments(parser)
    parser.add_argument("--insecure", action="store_true",
                        help="allow an --endpoint reachable from other machines (no "
                        "authentication: anyone reaching it can send streams)")
    parser.add_argument("--recover", action="store_true",
                        help="only convert recordings left unfinished in --record-dir, then exit")


def format_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width text table of stream counters (plus gap ranges and error codes)."""
    from engine.report import text_table

    lines = [text_table(rows, _COLUMNS).rstrip("\n")]
    for row in rows:
        if row.get("gap_ranges"):
            lines.append(f"  {row['stream']}: gaps {row['gap_ranges']}")
        if row.get("errors_by_code"):
            lines.append(f"  {row['stream']}: errors {row['errors_by_code']}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import zmq

    from acquisition.ingest import Ingest
    from acquisition.raw_files import recover

    if args.recover:  # the same as `castream recover DIR`
        for summary in recover(args.record_dir):
            log.info("recovered %s (%d missing)", summary.tif, summary.missing_frames)
        return 0
    from engine.commands._exposure import check_exposure

    check_exposure({"--endpoint": args.endpoint}, args.insecure,
                   authenticated=bool(args.curve_dir))
    record_dir = None if args.no_record else args.record_dir
    try:
        ingest = Ingest(args.endpoint, record_dir=record_dir, queue_size=args.queue_size,
                        policy=args.policy,
                        stream_idle_timeout_s=args.stream_idle_timeout_s or None,
                        curve_dir=args.curve_dir)
    except zmq.ZMQError as exc:
        log.error("cannot listen on %s: %s (another castream ingest/serve running? choose a "
                  "free --endpoint)", args.endpoint, exc)
        return 1
    with ingest:  # closing finalizes every open recording, also on Ctrl-C or SIGTERM
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
        try:
            final = _receive(args, ingest)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    sys.stdout.write("\nsummary\n" + format_table(final))
    return 0


def _interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _receive(args: argparse.Namespace, ingest) -> list[dict[str, Any]]:
    from acquisition.ingest import StreamStarted, StreamStopped

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    stopped = 0
    while deadline is None or time.monotonic() < deadline:
        if args.streams is not None and stopped >= args.streams:
            break
        item = ingest.get(timeout_s=0.2)
        if isinstance(item, StreamStarted):
            log.info("stream %r started (%s)", item.header.stream, item.header.mode)
        elif isinstance(item, StreamStopped):
            stopped += 1
            sys.stdout.write(format_table([item.stats.as_dict()]))
    if args.streams is not None:
        ingest.wait_until_stopped(args.streams, timeout_s=30)
    return [s.as_dict() for s in ingest.stats().values()]
