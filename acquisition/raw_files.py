"""A raw recording on disk: its files, its summary, and its conversion to TIFF + JSON.

While :class:`acquisition.recorder.RawRecorder` records a stream into ``<base>``, the stream
has ``<base>.start.json`` (the start header, then the stop), ``<base>.raw`` (items as raw
C-order bytes at ``first * item_bytes``) and ``<base>.idx`` (one ``(first, n)`` int64 pair per
written chunk, :data:`INDEX_RECORD`). :func:`convert_raw` turns them into ``<base>.tif``
(ImageJ TIFF with calibration, copied through a memmap in blocks) and ``<base>.json``
(:class:`RecordingSummary`: counts and gap ranges) and deletes them; :func:`recover` does that
for recordings a crash left behind.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.stream_kind import StreamKind
from acquisition.wire import StartHeader

log = logging.getLogger(__name__)

#: one record of ``<base>.idx``: ``(first, n)`` of a written chunk
INDEX_RECORD = struct.Struct("<qq")
_COPY_BLOCK_BYTES = 64 * 1024 * 1024
_IMAGEJ_DTYPES = ("uint8", "uint16", "int16", "float32")
_TIFF_LIMIT_BYTES = 2**32 - 2**25  # above this: BigTIFF (ImageJ cannot read those)


@dataclass
class RecordingSummary:
    """What ``<name>.json`` holds after conversion."""

    stream: str
    name: str
    tif: str | None
    mode: str
    dtype: str
    shape: list[int]
    pixel_um: float
    dt_ms: float
    blank: float | None
    cell: str | None
    n_total: int
    n_total_declared: int | None
    frames_recorded: int
    duplicate_frames: int
    missing_frames: int
    gap_ranges: list[list[int]] = field(default_factory=list)
    stopped: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unfinished_recordings(directory: str | os.PathLike) -> list[Path]:
    """Base paths of recordings a crash left as ``.raw`` + ``.start.json``."""
    return [sidecar.with_name(sidecar.name[: -len(".start.json")])
            for sidecar in sorted(Path(directory).glob("*.start.json"))]


def recover(directory: str | os.PathLike) -> list[RecordingSummary]:
    """Convert recordings left behind by a crash (``.raw`` + ``.start.json``); never run it
    on a directory that a live ``serve``/``ingest`` is recording into."""
    summaries = []
    for base in unfinished_recordings(directory):
        if path_with(base, ".json").exists():
            remove_raw_files(base)  # converted, crashed while cleaning up
            continue
        log.warning("recovering unfinished recording %s", base)
        summaries.append(convert_raw(base))
    return summaries


def convert_raw(base: Path) -> RecordingSummary:
    """Turn ``<base>.raw/.idx/.start.json`` into ``<base>.tif`` and ``<base>.json``."""
    sidecar = json.loads(sidecar_path(base).read_text())
    start, stop = sidecar["start"], sidecar.get("stop") or {}
    item_bytes = int(np.dtype(start["dtype"]).itemsize * int(np.prod(start["shape"])))
    covered, written = _coverage(path_with(base, ".idx"))
    declared = stop.get("n_total")
    n_total = max(int(declared or 0), covered[-1][1] if covered else 0)
    summary = RecordingSummary(
        stream=start["stream"], name=base.name, tif=None, mode=start["mode"],
        dtype=start["dtype"], shape=list(start["shape"]), pixel_um=start["pixel_um"],
        dt_ms=start["dt_ms"], blank=start.get("blank"), cell=start.get("cell"),
        n_total=n_total, n_total_declared=declared,
        frames_recorded=sum(b - a for a, b in covered),
        duplicate_frames=written - sum(b - a for a, b in covered),
        missing_frames=0, gap_ranges=_gaps(covered, n_total),
        stopped=bool(stop.get("stopped")), metadata=start.get("metadata") or {},
    )
    summary.missing_frames = sum(b - a for a, b in summary.gap_ranges)
    if n_total:
        _write_tiff(base, start, n_total, item_bytes)
        summary.tif = path_with(base, ".tif").name
    write_json(path_with(base, ".json"), summary.as_dict())
    remove_raw_files(base)
    log.info(
        "recorded %s: %d items, %d missing in %d gaps",
        summary.tif, n_total, summary.missing_frames, len(summary.gap_ranges),
    )
    return summary


def _coverage(idx_path: Path) -> tuple[list[tuple[int, int]], int]:
    """Merged ``[start, end)`` ranges of written items, and the total items written."""
    raw = idx_path.read_bytes() if idx_path.exists() else b""
    usable = len(raw) - len(raw) % INDEX_RECORD.size  # a crash may cut the last record
    pairs = np.frombuffer(raw[:usable], dtype="<i8").reshape(-1, 2)
    merged: list[tuple[int, int]] = []
    for first, n in pairs[np.argsort(pairs[:, 0], kind="stable")].tolist():
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], first + n))
        else:
            merged.append((first, first + n))
    return merged, int(pairs[:, 1].sum()) if len(pairs) else 0


def _gaps(covered: list[tuple[int, int]], n_total: int) -> list[list[int]]:
    gaps, position = [], 0
    for start, end in covered:
        if start > position:
            gaps.append([position, start])
        position = max(position, end)
    if n_total > position:
        gaps.append([position, n_total])
    return gaps


def _write_tiff(base: Path, start: dict, n_total: int, item_bytes: int) -> None:
    import tifffile  # imported here: only recording needs it

    shape = (n_total, *start["shape"])
    raw_path = path_with(base, ".raw")
    if os.path.getsize(raw_path) < n_total * item_bytes:
        os.truncate(raw_path, n_total * item_bytes)  # trailing gap: zeros
    raw = np.memmap(raw_path, dtype=start["dtype"], mode="r", shape=shape)
    tmp = path_with(base, ".tif.part")
    out = tifffile.memmap(tmp, shape=shape, dtype=start["dtype"], **_tiff_options(start, shape))
    step = max(1, _COPY_BLOCK_BYTES // item_bytes)
    for first in range(0, n_total, step):
        out[first : first + step] = raw[first : first + step]
    out.flush()
    del out, raw
    os.replace(tmp, path_with(base, ".tif"))


def _tiff_options(start: dict, shape: tuple[int, ...]) -> dict[str, Any]:
    """tifffile keywords: ImageJ calibration where ImageJ can read it, else BigTIFF/shaped."""
    linescan = StreamKind.from_wire_mode(start["mode"]).is_linescan  # images: TYX stacks
    pixel_um, dt_ms = float(start["pixel_um"]), float(start["dt_ms"])
    info = {"version": 1, "axes": "TX" if linescan else "TYX", "pixel_um": pixel_um,
            "dt_ms": dt_ms, "blank": start.get("blank"), "cell": start.get("cell"),
            "stream": start["stream"], "source": "castream ingest"}
    extra = {"Info": json.dumps({"castream": info})}
    nbytes = int(np.prod(shape)) * np.dtype(start["dtype"]).itemsize
    if start["dtype"] in _IMAGEJ_DTYPES and nbytes < _TIFF_LIMIT_BYTES:
        metadata = {"axes": "YX" if linescan else "TYX", "unit": "micron",
                    "finterval": dt_ms / 1000.0, **extra}
        if linescan:
            metadata["yunit"] = "ms"
        y_per_unit = 1.0 / dt_ms if linescan else 1.0 / pixel_um
        return {"imagej": True, "resolution": (1.0 / pixel_um, y_per_unit), "metadata": metadata}
    return {
        "bigtiff": nbytes >= _TIFF_LIMIT_BYTES,
        "resolution": (1e4 / pixel_um, 1e4 / pixel_um),
        "resolutionunit": "CENTIMETER",
        "metadata": {"axes": "TX" if linescan else "TYX", "castream": extra["Info"]},
    }


def header_fields(header: StartHeader) -> dict[str, Any]:
    fields = asdict(header)
    fields["shape"] = list(header.shape)
    return fields


def path_with(base: Path, extension: str) -> Path:
    """``base`` + extension (``with_suffix`` would eat dots inside stream names)."""
    return base.with_name(base.name + extension)


def sidecar_path(base: Path) -> Path:
    return path_with(base, ".start.json")


def exists_any(base: Path) -> bool:
    suffixes = (".raw", ".tif", ".json", ".idx")
    return sidecar_path(base).exists() or any(path_with(base, s).exists() for s in suffixes)


def remove_raw_files(base: Path) -> None:
    for path in (path_with(base, ".raw"), path_with(base, ".idx"), sidecar_path(base)):
        path.unlink(missing_ok=True)


def write_json(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    os.replace(tmp, path)
