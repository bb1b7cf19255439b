"""What a recording's axes are, when a TIFF does not say: ``analyze --axes TX|TYX|YX``.

A 2-D TIFF is either a line-scan (rows are consecutive lines: ``TX``) or a single image
(``YX``), and nothing in the pixels tells them apart. ``analyze`` takes a 2-D file as a
line-scan only when its metadata give a line interval (castream's own files, ImageJ
``finterval`` / a time ``yunit``) or when ``--axes TX`` says so; otherwise it refuses with one
line naming the flag, instead of analysing a picture as a line-scan.
"""

from __future__ import annotations

from pathlib import Path

from acquisition.stream_kind import StreamKind

AXES_CHOICES = ("TX", "TYX", "YX")


def open_kind(axes: str | None, path: Path) -> StreamKind | None:
    """The ``open_tiff`` ``stream_kind`` for ``--axes`` (None: the file decides); ``YX`` (no
    time axis) is refused."""
    if axes is None:
        return None
    if axes not in AXES_CHOICES:
        raise ValueError(f"--axes must be one of {', '.join(AXES_CHOICES)}, got {axes!r}")
    kind = StreamKind.from_axes(axes)
    if kind.is_image:
        raise ValueError(
            f"{path}: --axes YX is a single image without a time axis, in which no Ca2+ "
            "event can be found; use --axes TX (line-scan) or TYX (movie), or `castream "
            "cells` for a structure image")
    return kind


def check_axes_known(source, axes: str | None) -> None:
    """Refuse a 2-D file read as a line-scan unless ``--axes TX`` or its metadata say so.

    ``source`` is an opened :class:`~acquisition.tiff_source.TiffSource`; opened without a
    mode, it is a line-scan only when the file has no axis beyond Y and X.
    """
    declared = source.calibration_source.get("dt_ms") in ("metadata", "flag_over_metadata")
    if axes is None and source.stream_kind.is_linescan and not declared:
        height, width = source.shape
        raise ValueError(
            f"{source.path} is a 2-D image ({height} x {width} px) and its metadata do not "
            "give a line interval, so castream cannot tell a line-scan from a single image: "
            "pass --axes TX if its rows are consecutive lines (time down the rows)")
