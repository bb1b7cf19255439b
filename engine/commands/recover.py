"""``castream recover DIR``: turn recordings left unfinished by a crash into normal ones.

A recording in progress is ``NAME.raw`` (lines/frames at their index), ``NAME.idx`` (one
``(first, n)`` record per written chunk) and ``NAME.start.json``. After ``kill -9``, a power
loss or a full disk they stay behind; every chunk that was acknowledged to the publisher is
in them. This command converts each into ``NAME.tif`` + ``NAME.json`` (gaps listed), exactly
as a stopped stream would have been, and removes the raw files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

HELP = "convert recordings left unfinished (NAME.raw/.idx/.start.json) into TIFF + JSON"

log = logging.getLogger("castream.recover")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record_dir", metavar="DIR", type=Path,
                        help="record directory of `castream serve` / `castream ingest`")


def run(args: argparse.Namespace) -> int:
    from acquisition.raw_files import recover, unfinished_recordings

    if not args.record_dir.is_dir():
        raise FileNotFoundError(f"record directory {args.record_dir} not found")
    pending = unfinished_recordings(args.record_dir)
    if not pending:
        sys.stdout.write(f"nothing to recover in {args.record_dir}\n")
        return 0
    summaries = recover(args.record_dir)
    for summary in summaries:
        sys.stdout.write(f"{summary.tif or summary.name}: {summary.frames_recorded} recorded, "
                         f"{summary.missing_frames} missing in {summary.gap_ranges}\n")
    return 0
