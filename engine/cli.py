"""The ``castream`` command line: one subcommand per module, imported only when it runs.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, streamlit, ...) stay inside ``run``.
``ui`` and ``offline`` commands are imported lazily by module path, so that the engine
never imports them at module level (DESIGN.md layering).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from engine.extras import install_hint

#: subcommand -> module implementing it (HELP, add_arguments, run)
COMMANDS: dict[str, str] = {
    "simulate": "engine.commands.simulate",
    "replay": "engine.commands.replay",
    "ingest": "engine.commands.ingest",
    "recover": "engine.commands.recover",
    "keys": "engine.commands.keys",
    "serve": "engine.commands.serve",
    "analyze": "engine.commands.analyze",
    "cells": "engine.commands.cells",
    "export-events": "engine.commands.export_events",
    "demo": "engine.commands.demo",
    "train": "offline.commands.train",
    "evaluate": "offline.commands.evaluate",
    "export": "offline.commands.export",
    "tune-hybrid": "offline.commands.tune_hybrid",
    "train-classifier": "offline.commands.train_classifier",
    "train-cells": "offline.commands.train_cells",
    "dashboard": "ui.commands.dashboard",
}


def _load(name: str, module_path: str):
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if exc.name and module_path.startswith(exc.name):
            return None  # command not built in this version
        if install_hint(name, exc.name) is not None:
            return _NeedsExtra(name, exc)
        raise


class _NeedsExtra:
    """Stands in for a command whose module imports an optional dependency that is not
    installed: listed with the extra to install; running it raises that import error, which
    :func:`main` reports in one line."""

    def __init__(self, name: str, error: ModuleNotFoundError) -> None:
        self.HELP = f"(not installed: pip install 'castream[{install_hint(name, error.name)}]')"
        self._error = error

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def run(self, args: argparse.Namespace) -> int:
        raise self._error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="castream",
        description="Streaming analyzer for Ca2+ imaging of heart-muscle cells.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_path in COMMANDS.items():
        module = _load(name, module_path)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error instead of one line")
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        logging.getLogger("castream").warning("interrupted")
        return 130
    except ModuleNotFoundError as exc:
        extra = install_hint(args.command, exc.name)
        if args.debug or extra is None:
            raise
        logging.getLogger("castream").error(
            "castream %s needs %s, which is not installed: pip install 'castream[%s]' "
            "(--debug shows the traceback)", args.command, exc.name, extra)
        return 1
    except (OSError, ValueError) as exc:
        if args.debug:
            raise
        logging.getLogger("castream").error("%s (--debug shows the traceback)", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
