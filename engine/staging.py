"""Result files appear only when complete: write into a hidden staging folder, then rename.

``analyze`` writes ``events.csv``, ``labels.tif``, ``summary.json`` and ``overview.png`` into
``OUT/.castream-partial-XXXX/`` and moves each into ``OUT`` (``os.replace``, atomic within a
file system) once all are written, ``summary.json`` last. A failed or interrupted run removes
the staging folder and every output folder the run itself created, so nothing that looks like
a result is left behind (after ``kill -9`` only the hidden staging folder remains).

Nothing is replaced without being asked: the commands check with :func:`refuse_existing`,
before any work, that the output folder holds none of the files they would write, and go on
only with ``--force``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

STAGING_PREFIX = ".castream-partial-"
LAST_FILES = ("summary.json",)  # moved last: their presence means the rest is there


@contextlib.contextmanager
def staged_output(out_dir: str | Path) -> Iterator[Path]:
    """Yield a staging folder inside ``out_dir``; publish its files into ``out_dir`` when the
    block completes, clean up (staging and folders created here) when it raises."""
    out_dir = Path(out_dir)
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # deepest first
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    published = False
    try:
        yield staging
        files = sorted(staging.iterdir(), key=lambda p: (p.name in LAST_FILES, p.name))
        for item in files:
            os.replace(item, out_dir / item.name)
        published = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not published:
            remove_empty_folders(created)


class ResultsExistError(FileExistsError):
    """An output folder already holds results that a run would replace."""


def refuse_existing(out_dirs: list[str | Path] | str | Path, names: tuple[str, ...],
                    what: str) -> None:
    """Raise :class:`ResultsExistError` (one line, naming the folder and files) when any of
    ``out_dirs`` already holds one of ``names``; ``what`` names the earlier run's kind."""
    dirs = [out_dirs] if isinstance(out_dirs, (str, Path)) else list(out_dirs)
    for out_dir in dirs:
        found = [name for name in names if (Path(out_dir) / name).exists()]
        if found:
            more = f" (and {len(dirs) - 1} other output folders may too)" if len(dirs) > 1 else ""
            raise ResultsExistError(
                f"{out_dir} already holds results of {what} ({', '.join(found)}){more}: "
                "choose another --out, or pass --force to replace them")


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
