"""What the held-out checks on ``../shared/data`` share (:mod:`.real_shapes`,
:mod:`.real_cell_movies`): where the real material lies, their common options, and the
tables they print. Nothing is chosen on these checks; they report."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: the real material (read at run time, never copied into this repository)
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def add_arguments(parser: argparse.ArgumentParser, recordings: str, model: str) -> None:
    """``--n`` (``recordings``, default 12), ``--seed``, ``--detector``, ``--model``
    (default ``model``) and ``--blank``."""
    parser.add_argument("--n", type=int, default=12, help=f"{recordings} (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", nargs="+", default=["auto", "network", "classical"])
    parser.add_argument("--model", default=None, help=f"default: {model}")
    parser.add_argument("--blank", choices=("known", "estimated"), default="known",
                        help="each recording's offset: its true one, or estimated by the engine "
                             "as `castream analyze` does without --blank")


def read_material(load: Callable[[Path], Any], path: Path, log: logging.Logger) -> Any:
    """``load(path)``, or None after one error line when the file is missing (the caller then
    exits with status 1)."""
    try:
        return load(path)
    except FileNotFoundError as exc:
        log.error("error: %s", exc)
        return None


def log_tables(recordings: Sequence, model, detectors: Sequence[str], what: str,
               log: logging.Logger, blank: str = "known") -> None:
    """``castream evaluate``'s tables of each detector on ``recordings`` (``blank``: as
    :func:`offline.evaluate.run_engine`)."""
    from offline.evaluate import evaluate
    from offline.evaluate_report import format_tables

    for detector in detectors:
        result = evaluate(recordings, model, detector=detector, blank=blank)
        name = f"{detector} on {what}" + (", blank estimated" if blank == "estimated" else "")
        log.info("%s", format_tables(result, name))
