"""Lazy, chunked reading of TIFF recordings with their calibration.

:func:`open_tiff` opens plain TIFFs, ImageJ hyperstacks, OME-TIFF and Zeiss LSM (as far
as tifffile reads them) and presents them as a line-scan ``(T, X)`` or a movie
``(T, Y, X)``: singleton axes (C, Z, ...) are dropped; a 2-D image is a line-scan with one
row per line; one remaining non-spatial axis (T, or Z/I/Q/C when there is no T) is time.

Pixels are read in chunks without loading the file: through a memmap when the data are
uncompressed and contiguous, otherwise page by page (a compressed single-page line-scan
is decoded once, as tifffile cannot decode part of a page).

Calibration comes from :mod:`acquisition.tiff_calibration` (ImageJ, OME, LSM, castream
JSON); the flags given to :func:`open_tiff` override it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from acquisition.stream_kind import StreamKind
from acquisition.tiff_calibration import number as _number
from acquisition.tiff_calibration import read_calibration

log = logging.getLogger(__name__)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_TIME_AXES = "TZIQC"  # axes accepted as time when they are the only non-spatial one



class TiffSourceError(ValueError):
    """A TIFF that castream cannot use; ``code`` is one of ``not_tiff``, ``corrupt_tiff``,
    ``dimensionality``, ``dtype``, ``calibration``."""

    def __init__(self, code: str, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.code = code
        self.path = None if path is None else str(path)


@dataclass
class TiffSource:
    """An opened recording: geometry, calibration and a chunked reader."""

    path: Path
    stream_kind: StreamKind  # LINESCAN (T, X) or MOVIE (T, Y, X)
    shape: tuple[int, ...]
    dtype: np.dtype
    pixel_um: float | None
    dt_ms: float | None
    blank: float | None = None
    cell: str | None = None
    file_axes: str = ""  # axes as tifffile reported them
    #: where each calibration value came from: "flag" (given by the caller; the file has none),
    #: "flag_over_metadata", "metadata", or None: {"pixel_um": ..., "dt_ms": ..., "blank": ...}
    calibration_source: dict[str, str | None] = field(default_factory=dict)
    _read: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False)
    _close: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def axes(self) -> str:
        """Axis string of :attr:`shape`: ``"TX"`` or ``"TYX"``."""
        return self.stream_kind.axes

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Lines/frames ``[start, stop)`` as a new native-byte-order C-contiguous array."""
        start, stop = max(0, start), min(stop, self.shape[0])
        assert self._read is not None, "source is closed"
        try:
            block = self._read(start, max(start, stop))
        except (ValueError, OSError, EOFError, tifffile.TiffFileError) as exc:
            raise TiffSourceError(
                "corrupt_tiff", f"{self.path}: cannot read items {start}-{stop}: {exc}", self.path
            ) from exc
        return np.ascontiguousarray(block, dtype=self.dtype)

    def iter_chunks(self, n: int) -> Iterator[np.ndarray]:
        """Yield consecutive blocks of at most ``n`` lines/frames."""
        for start in range(0, self.shape[0], n):
            yield self.read(start, start + n)

    def close(self) -> None:
        if self._close is not None:
            self._close()
        self._read = self._close = None

    def __enter__(self) -> TiffSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_tiff(
    path: str | os.PathLike,
    pixel_um: float | None = None,
    dt_ms: float | None = None,
    blank: float | None = None,
    stream_kind: StreamKind | None = None,
    require_calibration: bool = True,
) -> TiffSource:
    """Open a TIFF lazily as a line-scan ``(T, X)`` or movie ``(T, Y, X)``.

    Parameters
    ----------
    pixel_um, dt_ms, blank
        Override the file's calibration (pixel size, line/frame interval, offset).
    stream_kind
        ``StreamKind.LINESCAN`` reads a stack of frames as consecutive lines;
        ``StreamKind.MOVIE`` reads a 2-D image as a one-frame movie; ``None`` decides from
        the axes.
    require_calibration
        Raise :class:`TiffSourceError` (``calibration``) when pixel size or interval is
        neither in the metadata nor given.
    """
    path = Path(path)
    tif = _open_tifffile(path)
    try:
        series = tif.series[0]
        _check_dtype(path, series.dtype)
        kind, shape = _canonical_geometry(path, series.axes, tuple(series.shape), stream_kind)
        calibration = read_calibration(tif, kind)
        reader = _make_reader(path, tif, series, shape)
    except TiffSourceError:
        tif.close()
        raise
    except Exception as exc:  # tifffile raises many types on broken structures
        tif.close()
        raise TiffSourceError("corrupt_tiff", f"{path}: unreadable TIFF structure: {exc}", path) from exc
    source = TiffSource(
        path=path, stream_kind=kind, shape=shape, dtype=series.dtype.newbyteorder("="),
        pixel_um=_first(pixel_um, calibration.get("pixel_um")),
        dt_ms=_first(dt_ms, calibration.get("dt_ms")),
        blank=_first(blank, calibration.get("blank")), cell=calibration.get("cell"),
        file_axes=series.axes, _read=reader, _close=tif.close,
        calibration_source={key: _origin(flag, calibration.get(key)) for key, flag in
                            (("pixel_um", pixel_um), ("dt_ms", dt_ms), ("blank", blank))},
    )
    if require_calibration:
        _check_calibration(source)
    log.debug("opened %s: %s (file axes %s) shape %s", path, kind.value, series.axes, shape)
    return source


def _open_tifffile(path: Path) -> tifffile.TiffFile:
    if not path.exists():
        raise FileNotFoundError(f"TIFF file not found: {path}")
    if path.is_dir():
        raise TiffSourceError("not_tiff", f"{path} is a directory, not a TIFF file", path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic not in _TIFF_MAGIC:
        raise TiffSourceError(
            "not_tiff", f"{path} is not a TIFF file (starts with {magic!r})", path
        )
    try:
        tif = tifffile.TiffFile(path)
        if not tif.series:
            tif.close()
            raise TiffSourceError("corrupt_tiff", f"{path}: TIFF holds no image data", path)
        return tif
    except TiffSourceError:
        raise
    except Exception as exc:
        raise TiffSourceError("corrupt_tiff", f"{path}: corrupt TIFF: {exc}", path) from exc


def _check_dtype(path: Path, dtype: np.dtype) -> None:
    """Counts are real numbers: refuse booleans (a mask, not a recording) and complex values
    (their imaginary part would be dropped without a word)."""
    if dtype.kind in "iuf":
        return
    what = {"b": "true/false values (a mask?)", "c": "complex numbers"}.get(
        dtype.kind, f"values of type {dtype}")
    raise TiffSourceError(
        "dtype", f"{path}: the image holds {what}; castream needs intensity counts "
        "(unsigned or signed integers, or floats)", path)


def _canonical_geometry(
    path: Path, file_axes: str, file_shape: tuple[int, ...], kind: StreamKind | None
) -> tuple[StreamKind, tuple[int, ...]]:
    """Map tifffile axes/shape to ``(LINESCAN, (T, X))`` or ``(MOVIE, (T, Y, X))``."""
    kept = [(a, s) for a, s in zip(file_axes, file_shape, strict=True) if s > 1 or a in "YX"]
    axes = "".join(a for a, _ in kept)
    if not axes.endswith("YX"):
        raise TiffSourceError(
            "dimensionality",
            f"{path}: axes {file_axes} shape {list(file_shape)} are not images with Y and X "
            "last (RGB/multi-sample images are not supported)",
            path,
        )
    other = axes[:-2]
    if len(other) > 1:
        raise TiffSourceError(
            "dimensionality",
            f"{path}: axes {file_axes} shape {list(file_shape)}: castream needs one channel "
            "and one time axis, i.e. (T, X) or (T, Y, X); split channels/planes first",
            path,
        )
    y, x = kept[-2][1], kept[-1][1]
    if not other:
        if kind is StreamKind.MOVIE:
            return StreamKind.MOVIE, (1, y, x)
        return StreamKind.LINESCAN, (y, x)
    if other not in _TIME_AXES:
        raise TiffSourceError(
            "dimensionality", f"{path}: axis {other} (size {kept[0][1]}) is not time", path
        )
    if other != "T":
        level = logging.WARNING if other == "C" else logging.INFO
        log.log(level, "%s: no T axis; using axis %s (size %d) as time", path, other, kept[0][1])
    if kind is StreamKind.LINESCAN:
        return StreamKind.LINESCAN, (kept[0][1] * y, x)
    return StreamKind.MOVIE, (kept[0][1], y, x)


def _make_reader(
    path: Path, tif: tifffile.TiffFile, series: Any, shape: tuple[int, ...]
) -> Callable[[int, int], np.ndarray]:
    """Memmap reader when possible, else page-wise reader with a one-page cache."""
    nbytes = math.prod(series.shape) * series.dtype.itemsize
    offset = series.dataoffset
    if offset is not None and offset + nbytes > os.path.getsize(path):
        raise TiffSourceError(
            "corrupt_tiff",
            f"{path} is truncated: image data need {nbytes} bytes from offset {offset} "
            f"but the file has {os.path.getsize(path)} bytes",
            path,
        )
    if offset is not None:
        file_dtype = np.dtype(tif.byteorder + series.dtype.char)
        data = np.memmap(path, dtype=file_dtype, mode="r", offset=offset, shape=shape)
        native = file_dtype.newbyteorder("=")
        return lambda start, stop: np.array(data[start:stop], dtype=native, order="C")
    _check_pages_complete(path, tif, series)
    return _page_reader(tif, len(series.pages), shape)


def _check_pages_complete(path: Path, tif: tifffile.TiffFile, series: Any) -> None:
    """Detect truncated page-wise files: missing IFDs or strips beyond the end of file."""
    expected = None
    if tif.is_imagej and tif.imagej_metadata:
        expected = _number(tif.imagej_metadata.get("images"))
    elif tif.is_shaped and tif.shaped_metadata and "shape" in tif.shaped_metadata[0]:
        expected = math.prod(tif.shaped_metadata[0]["shape"][:-2])
    if expected and len(tif.pages) < expected:
        raise TiffSourceError(
            "corrupt_tiff",
            f"{path} is truncated or damaged: {len(tif.pages)} of {int(expected)} images present",
            path,
        )
    file_size = os.path.getsize(path)
    for index, page in enumerate(series.pages):
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True)]
        if ends and max(ends) > file_size:
            raise TiffSourceError(
                "corrupt_tiff", f"{path} is truncated: image {index} ends beyond end of file", path
            )


def _page_reader(
    tif: tifffile.TiffFile, n_pages: int, shape: tuple[int, ...]
) -> Callable[[int, int], np.ndarray]:
    items_per_page = max(1, shape[0] // n_pages)
    cache: dict[int, np.ndarray] = {}

    def page(index: int) -> np.ndarray:
        if index not in cache:
            cache.clear()
            cache[index] = tif.asarray(series=0, key=index).reshape((-1, *shape[1:]))
        return cache[index]

    def read(start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.empty((0, *shape[1:]), dtype=tif.series[0].dtype)
        first_page, last_page = start // items_per_page, (stop - 1) // items_per_page
        if items_per_page == 1 and last_page > first_page:
            block = tif.asarray(series=0, key=range(first_page, last_page + 1))
            return block.reshape((-1, *shape[1:]))
        parts = [page(p) for p in range(first_page, last_page + 1)]
        block = parts[0] if len(parts) == 1 else np.concatenate(parts)
        skip = start - first_page * items_per_page
        return block[skip : skip + stop - start]

    return read


def _origin(flag: Any, metadata: Any) -> str | None:
    """Where a calibration value comes from: ``"flag"`` (the file records none),
    ``"flag_over_metadata"``, ``"metadata"`` or None (neither)."""
    if flag is not None:
        return "flag" if metadata is None else "flag_over_metadata"
    return "metadata" if metadata is not None else None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _check_calibration(source: TiffSource) -> None:
    missing = []
    if not source.pixel_um or source.pixel_um <= 0:
        missing.append("pixel size (pass --pixel-um / pixel_um=)")
    if not source.dt_ms or source.dt_ms <= 0:
        interval = f"{source.stream_kind.item_name} interval"
        missing.append(f"{interval} (pass --dt-ms / dt_ms=)")
    if missing:
        raise TiffSourceError(
            "calibration",
            f"{source.path}: no {' and no '.join(missing)} in the file's metadata "
            "(ImageJ/OME/LSM)",
            source.path,
        )
