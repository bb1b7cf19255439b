"""``castream export-events STORE --stream S --format csv|parquet --out FILE``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "export the events of one stream from a castream SQLite store to CSV or Parquet"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="SQLite store written by serve/analyze")
    parser.add_argument("--stream", required=True, help="stream id (see the dashboard)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--out", type=Path, required=True, help="output file")
    parser.add_argument("--force", action="store_true",
                        help="replace --out if it exists (default: refuse)")


def run(args: argparse.Namespace) -> int:
    from engine.events import EVENT_COLUMNS
    from engine.sinks.store import SqliteStore
    from engine.sinks.tables import write_events_csv, write_events_parquet

    if not args.store.exists():
        raise FileNotFoundError(f"no store at {args.store}")
    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists: choose another --out, or pass --force to "
                              "replace it")
    store = SqliteStore(args.store, readonly=True)
    try:
        known = {row["stream"] for row in store.list_streams()}
        if args.stream not in known:
            raise ValueError(f"stream {args.stream!r} not in {args.store} (known: {sorted(known)})")
        events = [{c: row[c] for c in EVENT_COLUMNS} for row in store.events(args.stream)]
    finally:
        store.close()
    writer = write_events_csv if args.format == "csv" else write_events_parquet
    writer(args.out, events)
    log.info("wrote %d events of %s to %s", len(events), args.stream, args.out)
    return 0
