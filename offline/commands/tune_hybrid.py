"""``castream tune-hybrid MODEL [--n N]``: choose the hybrid detector's fusion and significance
threshold on validation data of both generators and write ``MODEL/hybrid.json``
(:mod:`offline.hybrid_tuning`; the whole search goes to ``MODEL/hybrid_search.json``; the
post-processing parameters in ``MODEL/postprocess.json`` are not tuned here: they stay as
they are)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

HELP = ("tune the hybrid detector (network + classical, fused) on simulator and development-set "
        "validation recordings; writes MODEL/hybrid.json")

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model directory (its hybrid.json is written)")
    parser.add_argument("--n", type=int, default=12,
                        help="validation recordings per generator (default: %(default)s)")
    parser.add_argument("--n-empty", type=int, default=6,
                        help="empty recordings per generator (default: %(default)s)")
    parser.add_argument("--max-false-per-s", type=float, default=0.5,
                        help="false events per second allowed on empty recordings "
                        "(default: %(default)s)")
    parser.add_argument("--k-detect", type=float, nargs="*", default=None,
                        help="classical detection criteria tried in the union (default: 6-7.5; "
                        "none given: no grid)")
    parser.add_argument("--k-grow", type=float, nargs="*", default=None,
                        help="classical extent criteria tried in the union (default: 3.5-4.5)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--dry-run", action="store_true",
                        help="search and print the best, write nothing")


def run(args: argparse.Namespace) -> int:
    from offline.hybrid_tuning import (
        K_DETECT,
        K_GROW,
        best_params,
        candidates,
        tune_hybrid,
        write_best,
    )

    if not (args.model / "config.json").is_file():
        raise FileNotFoundError(f"{args.model} is not a model directory (no config.json)")
    fusions = candidates(K_DETECT if args.k_detect is None else args.k_detect,
                         K_GROW if args.k_grow is None else args.k_grow)
    search = tune_hybrid(args.model, n=args.n, n_empty=args.n_empty, fusions=fusions,
                         max_false_per_s=args.max_false_per_s, backend=args.backend)
    command = "castream tune-hybrid " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    params = best_params(search, command, args.model)
    log.info("best fusion: %s", params)
    if args.dry_run:
        return 0
    log.info("wrote %s", write_best(args.model, params, search))
    return 0
