"""Command-line options for ZeroMQ CURVE (:mod:`acquisition.curve`), shared by the commands."""

from __future__ import annotations

import argparse


def add_curve_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--curve-dir`` for the engine (serve, ingest)."""
    parser.add_argument("--curve-dir", metavar="DIR",
                        help="CURVE keys made by `castream keys DIR`: encrypt and authenticate "
                             "the ingest and event sockets, accept only clients whose public "
                             "key is in DIR/allowed/ (needed to bind a non-loopback address "
                             "without --insecure)")


def add_curve_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--curve-dir`` / ``--curve-name`` for a client of an engine that requires CURVE."""
    parser.add_argument("--curve-dir", metavar="DIR",
                        help="folder with the engine's server.key and this client's "
                             "NAME.key_secret (`castream keys DIR --client NAME`)")
    parser.add_argument("--curve-name", default="client", metavar="NAME",
                        help="this client's key name in --curve-dir (default: %(default)s)")


def curve_client(args: argparse.Namespace):
    """The client's :class:`~acquisition.curve.CurveClient`, or ``None`` without --curve-dir."""
    if not getattr(args, "curve_dir", None):
        return None
    from acquisition.curve import CurveClient

    return CurveClient.from_folder(args.curve_dir, args.curve_name)
