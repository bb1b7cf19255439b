"""``castream keys DIR [--client NAME]``: ZeroMQ CURVE keys for exposed endpoints."""

from __future__ import annotations

import argparse
import logging
import sys

HELP = "make CURVE keys: the engine's keypair and client keypairs on its allow-list"

log = logging.getLogger("castream.keys")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR",
                        help="key folder (created): server.key(_secret), NAME.key(_secret), "
                             "allowed/NAME.key")
    parser.add_argument("--client", action="append", default=[], metavar="NAME",
                        help="also make a client keypair NAME and allow it (repeatable)")


def run(args: argparse.Namespace) -> int:
    from acquisition.curve import make_keys

    written = []
    for client in args.client or [None]:
        written += make_keys(args.folder, client)
    for path in written:
        sys.stdout.write(f"{path}\n")
    if not written:
        log.info("all keys already exist in %s (kept)", args.folder)
    sys.stdout.write(
        f"engine: castream serve --curve-dir {args.folder} ... (keeps server.key_secret and "
        f"allowed/)\nclient: copy server.key and NAME.key_secret to the client and pass "
        f"--curve-dir DIR --curve-name NAME\n")
    return 0
