"""``castream serve``: receive live streams, analyze them, store and publish the events."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._engine_args import add_engine_arguments, engine_config

HELP = "receive streams over ZeroMQ, record them, detect and characterize Ca2+ events live"

log = logging.getLogger("castream.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555",
                        help="ingest address to bind (PULL; default: %(default)s)")
    parser.add_argument("--publish", default="tcp://127.0.0.1:5556",
                        help="event PUB address to bind, or 'none' (default: %(default)s)")
    parser.add_argument("--store", type=Path, default=Path("castream-data/castream.sqlite"),
                        help="SQLite event store (default: %(default)s)")
    parser.add_argument("--record-dir", type=Path, default=Path("castream-data/raw"),
                        help="raw recordings, one TIFF per stream (default: %(default)s)")
    parser.add_argument("--queue-size", type=int, default=1024,
                        help="ingest → analysis queue bound, in chunks (policy: block)")
    parser.add_argument("--max-streams", type=int,
                        help="exit after this many streams have finished")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from engine.runtime import running_server

    with running_server(
        endpoint=args.endpoint, publish=None if args.publish == "none" else args.publish,
        store=args.store, record_dir=args.record_dir, config=engine_config(args),
        queue_size=args.queue_size,
    ) as server:
        log.info("serving: ingest %s, events %s, store %s, raw recordings in %s",
                 server.ingest.endpoint, args.publish, args.store, args.record_dir)
        try:
            server.run(max_streams=args.max_streams)
        except KeyboardInterrupt:
            log.info("stopping")
        sys.stdout.write(server_report(server))
    return 0


def server_report(server) -> str:
    """Per-stream summary of everything the server finished."""
    from engine.report import CELL_TABLE, text_table

    rows = [done["summary"] for done in server.finished.values()]
    if not rows:
        return "no stream finished\n"
    return "\nper-cell summary\n" + text_table(rows, CELL_TABLE)
