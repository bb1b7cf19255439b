"""What a recording's axes are, when a TIFF does not say: ``analyze --axes TX|TYX|YX``.

A 2-D TIFF is either a line-scan (rows are consecutive lines: ``TX``) or a single image
(``YX``), and nothing in the pixels tells them apart. ``analyze`` takes a 2-D file as a
line-scan only when its metadata give a line interval (castream's own files, ImageJ
``finterval`` / a time ``yunit``) or when ``--axes TX`` says so; otherwise it refuses with one
line naming the flag, instead of analysing a picture as a line-scan.
"""

from __future__ import annotations

from pathlib import Path

AXES_CHOICES = ("TX", "TYX", "YX")

#: ``--axes`` -> :func:`acquisition.tiff_source.open_tiff` ``mode``
_OPEN_MODE = {None: None, "TX": "linescan", "TYX": "frames"}


def open_mode(axes: str | None, path: Path) -> str | None:
    """The ``open_tiff`` mode for ``--axes``; ``YX`` (no time axis) is refused."""
    if axes == "YX":
        raise ValueError(
            f"{path}: --axes YX is a single image without a time axis, in which no Ca2+ "
            "event can be found; use --axes TX (line-scan) or TYX (movie), or `castream "
            "cells` for a structure image")
    if axes not in _OPEN_MODE:
        raise ValueError(f"--axes must be one of {', '.join(AXES_CHOICES)}, got {axes!r}")
    return _OPEN_MODE[axes]


def check_axes_known(source, axes: str | None) -> None:
    """Refuse a 2-D file read as a line-scan unless ``--axes TX`` or its metadata say so.

    ``source`` is an opened :class:`~acquisition.tiff_source.TiffSource`; opened without a
    mode, it is a line-scan only when the file has no axis beyond Y and X.
    """
    declared = source.calibration_source.get("dt_ms") in ("metadata", "flag_over_metadata")
    if axes is None and source.axes == "TX" and not declared:
        height, width = source.shape
        raise ValueError(
            f"{source.path} is a 2-D image ({height} x {width} px) and its metadata do not "
            "give a line interval, so castream cannot tell a line-scan from a single image: "
            "pass --axes TX if its rows are consecutive lines (time down the rows)")
