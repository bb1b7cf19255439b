"""The validation recordings the experiments score on: both generators, never the test seeds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from acquisition.stream_kind import StreamKind
from offline.datasets import SimulatedSource
from offline.devsim import DevSource
from offline.thresholds import DEV_VAL_SEED

#: the development validation recordings again, their single sparks carrying template noise
TEMPLATE_SET = "development, template noise"
#: simulator validation movies run at raised wave and puff rates, so that every class is scored
RAISED = {"wave_rate_per_cell_s": 0.5, "puff_rate_per_100um_s": 0.8}


def raised(kind: str) -> bool:
    """Whether the simulator's validation recordings of ``kind`` run at raised rates (movies)."""
    return StreamKind.from_model_kind(kind) is StreamKind.MOVIE


def validation_sets(kind: str, n_dev: int, n_sim: int, offset: int = 0) -> dict:
    """``{"development": …, "simulator": …}`` lazy validation recordings of ``kind``
    (development seeds from ``DEV_VAL_SEED + offset``; simulator validation split, seed 0)."""
    sim_params = RAISED if raised(kind) else {}
    return {"development": DevSource(kind=kind, seed=DEV_VAL_SEED + offset).lazy(n_dev),
            "simulator": SimulatedSource(kind=kind, split="val", seed=0,
                                         params=dict(sim_params)).lazy(n_sim)}


def add_set_arguments(parser, n_dev: int, n_sim: int, what: str) -> None:
    """``--n``, ``--n-sim`` and ``--offset`` for :func:`sets_from_arguments` (``what``: the
    recordings' name in the help, e.g. "movies")."""
    parser.add_argument("--n", type=int, default=n_dev, help=f"development validation {what}")
    parser.add_argument("--n-sim", type=int, default=n_sim,
                        help=f"simulator validation {what} (0: development only)")
    parser.add_argument("--offset", type=int, default=0, help="first development seed offset")


def sets_from_arguments(args, kind: str) -> dict:
    """:func:`validation_sets` for the arguments of :func:`add_set_arguments` (without the
    simulator when ``--n-sim`` is 0; with :data:`TEMPLATE_SET` when the parser also took
    :func:`add_template_noise_argument` and it was given)."""
    data = validation_sets(kind, args.n, args.n_sim, args.offset)
    if args.n_sim == 0:
        del data["simulator"]
    if getattr(args, "template_noise", ""):
        data[TEMPLATE_SET] = DevSource(kind=kind, seed=DEV_VAL_SEED + args.offset, params={
            "template_noise_sd": args.template_noise}).lazy(args.n)
    return data


def add_template_noise_argument(parser) -> None:
    """``--template-noise LO,HI`` for :func:`sets_from_arguments`."""
    parser.add_argument("--template-noise", default="", metavar="LO,HI",
                        help="also the development recordings with single sparks carrying a "
                             "recorded shape's noise (offline.devsim.template_noise), this SD "
                             "range as a fraction of each spark's peak")


def model_copy(model: Path, into: Path, name: str,
               change_config: Callable[[dict], None] | None = None) -> Path:
    """A copy of the model directory ``model`` at ``into / name`` whose ``config.json`` went
    through ``change_config`` (edited in place; None: as it is). The model is not touched."""
    copy = into / name
    shutil.copytree(model, copy)
    if change_config is not None:
        path = copy / "config.json"
        config = json.loads(path.read_text())
        change_config(config)
        path.write_text(json.dumps(config, indent=2))
    return copy
