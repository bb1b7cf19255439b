"""Where training writes: a new folder by default, an existing one only with ``--force``.

``castream train``, ``train-classifier`` and ``train-cells`` write to ``--out`` when given,
else to a new ``models/NAME-YYYYMMDD-HHMMSS`` folder, so a trial run never replaces the models
the engine ships with. A folder under ``engine/models/default`` (the packaged models), and any
``--out`` that already holds files (an earlier run's model), is refused unless ``--force`` is
given; a command that is meant to work in an existing model directory (``train --resume``,
``train-cells --evaluate-only``) passes ``existing_ok``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from engine.models.model_dir import DEFAULT_ROOT

log = logging.getLogger(__name__)

NEW_MODELS_ROOT = Path("models")


def is_packaged(path: str | Path) -> bool:
    """``path`` is (inside) the packaged models folder ``engine/models/default``."""
    resolved, root = Path(path).resolve(), DEFAULT_ROOT.resolve()
    return resolved == root or root in resolved.parents


def training_out_dir(out: str | Path | None, name: str, force: bool = False,
                     root: Path = NEW_MODELS_ROOT, existing_ok: bool = False) -> Path:
    """The folder a training command writes: ``out``, or a new ``root/NAME-DATE``.

    Raises ``ValueError`` (one line naming the fix) when ``out`` is a packaged model, or
    (unless ``existing_ok``) a folder that already holds files, and ``force`` is not set.
    """
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, n = root / f"{name}-{stamp}", 2
        while path.exists():
            path, n = root / f"{name}-{stamp}-{n}", n + 1
        log.info("writing the new model to %s (pass --out DIR to choose)", path)
        return path
    path = Path(out)
    if is_packaged(path) and not force:
        raise ValueError(
            f"--out {path} is a packaged model (under {DEFAULT_ROOT}): writing there would "
            "replace the model castream ships with; choose another --out, or pass --force to replace it")
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() and not existing_ok else []
    if held and not force:
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        raise ValueError(
            f"--out {path} already holds files ({shown}): training would replace an earlier "
            "run's model; choose another --out, or pass --force to replace it")
    return path


def add_out_arguments(parser, what: str) -> None:
    """``--out`` (default: a new folder) and ``--force`` for a training command."""
    parser.add_argument("--out", type=Path, default=None,
                        help=f"{what} to write (default: a new folder models/NAME-DATE)")
    parser.add_argument("--force", action="store_true",
                        help="allow --out to name a folder that already holds a model (an "
                             "earlier run's, or a packaged one in engine/models/default) and "
                             "replace it")
