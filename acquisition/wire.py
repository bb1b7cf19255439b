"""The castream wire format: one versioned schema for every message on the socket.

A message is a ZeroMQ multipart ``[header, payload]``:

* ``header`` is a msgpack map. Every header has ``v`` (schema version), ``kind``
  (``"start"`` | ``"chunk"`` | ``"stop"``), ``stream`` (stream id) and ``seq``
  (per-stream message counter, starting at 0 with the ``start`` message).
* ``start`` also carries ``mode`` (``"linescan"`` | ``"frames"``), ``dtype``, ``shape``
  of one line ``[X]`` or one frame ``[Y, X]``, ``pixel_um``, ``dt_ms`` (line or frame
  interval), optional ``blank`` (camera/PMT offset, in counts), optional ``cell`` id and
  free ``metadata``.
* ``chunk`` also carries ``first`` (index of its first line/frame in the stream), ``n``
  (number of lines/frames) and ``t_ns`` (acquisition time of the first one, ns since epoch).
* ``stop`` may carry ``n_total`` (lines/frames the producer sent).
* ``payload`` is the chunk's raw C-order bytes (``n * prod(shape)`` items of ``dtype``);
  ``start`` and ``stop`` have an empty payload. Nothing is ever pickled.

Producers build headers through :class:`StartHeader`, :class:`ChunkHeader` and
:class:`StopHeader`; the receiver validates with :func:`decode_header` and
:func:`decode_payload`, whose :class:`WireError` names what is wrong in ``code``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import msgpack
import numpy as np

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
MODES = ("linescan", "frames")
DTYPES = ("uint8", "uint16", "int16", "uint32", "float32")
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
MAX_STREAM_ID_CHARS = 128


class WireError(ValueError):
    """A message that does not follow the wire schema.

    Parameters
    ----------
    code
        Short machine-readable reason, used as a counter name (e.g. ``"bad_header"``,
        ``"unknown_version"``, ``"truncated_payload"``, ``"dtype"``, ``"shape"``,
        ``"oversize"``, ``"unknown_stream"``, ``"sequence"``).
    message
        Human-readable explanation naming the offending field and value.
    stream
        Stream id, when the header got far enough to name one.
    """

    def __init__(self, code: str, message: str, stream: str | None = None):
        super().__init__(message)
        self.code = code
        self.stream = stream


@dataclass(frozen=True)
class StartHeader:
    """Opens a stream and declares the geometry and calibration of every later chunk."""

    stream: str
    mode: Literal["linescan", "frames"]
    dtype: str
    shape: tuple[int, ...]
    pixel_um: float
    dt_ms: float
    blank: float | None = None
    cell: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    v: int = SCHEMA_VERSION
    kind: Literal["start"] = "start"

    @property
    def axes(self) -> str:
        """Axis string of the stream's arrays: ``"TX"`` or ``"TYX"``."""
        return "TX" if self.mode == "linescan" else "TYX"

    @property
    def item_bytes(self) -> int:
        """Bytes of one line/frame."""
        return int(np.dtype(self.dtype).itemsize * math.prod(self.shape))


@dataclass(frozen=True)
class ChunkHeader:
    """``n`` consecutive lines/frames starting at index ``first``."""

    stream: str
    seq: int
    first: int
    n: int
    t_ns: int
    v: int = SCHEMA_VERSION
    kind: Literal["chunk"] = "chunk"


@dataclass(frozen=True)
class StopHeader:
    """Closes a stream; ``n_total`` lets the receiver check that nothing is missing."""

    stream: str
    seq: int
    n_total: int | None = None
    v: int = SCHEMA_VERSION
    kind: Literal["stop"] = "stop"


Header = StartHeader | ChunkHeader | StopHeader


def encode_header(header: Header) -> bytes:
    """Serialize a header to msgpack bytes (tuples become arrays)."""
    fields = asdict(header)
    if isinstance(header, StartHeader):
        fields["shape"] = list(header.shape)
    return msgpack.packb(fields, use_bin_type=True)


def encode_message(header: Header, payload: np.ndarray | None = None) -> list[Any]:
    """Build the multipart frames ``[header, payload]``; the payload is not copied.

    ``payload`` must be C-contiguous; for a chunk its first axis is ``n``.
    """
    if payload is None:
        return [encode_header(header), b""]
    if not payload.flags.c_contiguous:
        raise ValueError("payload must be C-contiguous (use np.ascontiguousarray)")
    return [encode_header(header), memoryview(payload).cast("B")]


def _require(fields: dict, name: str, types: tuple[type, ...], stream: str | None) -> Any:
    if name not in fields:
        raise WireError("bad_header", f"header field '{name}' is missing", stream)
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, types):
        expected = "/".join(t.__name__ for t in types)
        raise WireError(
            "bad_header",
            f"header field '{name}' must be {expected}, got {type(value).__name__} {value!r}",
            stream,
        )
    return value


def _unpack_map(raw: bytes) -> dict:
    if len(raw) > MAX_HEADER_BYTES:
        raise WireError("oversize", f"header is {len(raw)} bytes, limit {MAX_HEADER_BYTES}")
    try:
        fields = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise WireError("bad_header", f"header is not valid msgpack: {exc}") from None
    if not isinstance(fields, dict):
        raise WireError("bad_header", f"header must be a msgpack map, got {type(fields).__name__}")
    return fields


def _decode_common(fields: dict) -> tuple[str, str, int]:
    stream = fields.get("stream") if isinstance(fields.get("stream"), str) else None
    version = _require(fields, "v", (int,), stream)
    if version not in SUPPORTED_VERSIONS:
        raise WireError(
            "unknown_version",
            f"schema version {version} is not supported (supported: {sorted(SUPPORTED_VERSIONS)})",
            stream,
        )
    stream = _require(fields, "stream", (str,), stream)
    if not stream or len(stream) > MAX_STREAM_ID_CHARS:
        raise WireError("bad_header", f"stream id must be 1-{MAX_STREAM_ID_CHARS} characters")
    kind = _require(fields, "kind", (str,), stream)
    seq = _require(fields, "seq", (int,), stream)
    if seq < 0:
        raise WireError("bad_header", f"seq must be >= 0, got {seq}", stream)
    return stream, kind, seq


def _decode_start(fields: dict, stream: str, seq: int) -> StartHeader:
    mode = _require(fields, "mode", (str,), stream)
    if mode not in MODES:
        raise WireError("bad_header", f"mode must be one of {MODES}, got {mode!r}", stream)
    dtype = _require(fields, "dtype", (str,), stream)
    if dtype not in DTYPES:
        raise WireError("dtype", f"dtype {dtype!r} is not supported (supported: {DTYPES})", stream)
    shape = _require(fields, "shape", (list, tuple), stream)
    want_ndim = 1 if mode == "linescan" else 2
    if len(shape) != want_ndim or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 1 << 16 for s in shape
    ):
        raise WireError(
            "shape",
            f"shape for mode {mode!r} must be {want_ndim} positive ints <= 65536, got {shape!r}",
            stream,
        )
    pixel_um = float(_require(fields, "pixel_um", (int, float), stream))
    dt_ms = float(_require(fields, "dt_ms", (int, float), stream))
    for name, value in (("pixel_um", pixel_um), ("dt_ms", dt_ms)):
        if not math.isfinite(value) or value <= 0:
            raise WireError("bad_header", f"{name} must be a positive number, got {value}", stream)
    blank = fields.get("blank")
    if blank is not None and (isinstance(blank, bool) or not isinstance(blank, (int, float))):
        raise WireError("bad_header", f"blank must be a number or absent, got {blank!r}", stream)
    cell = fields.get("cell")
    if cell is not None and not isinstance(cell, str):
        raise WireError("bad_header", f"cell must be a string or absent, got {cell!r}", stream)
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise WireError("bad_header", "metadata must be a map", stream)
    return StartHeader(
        stream=stream, mode=mode, dtype=dtype, shape=tuple(shape), pixel_um=pixel_um,
        dt_ms=dt_ms, blank=None if blank is None else float(blank), cell=cell,
        metadata=metadata, seq=seq,
    )


def _decode_chunk(fields: dict, stream: str, seq: int) -> ChunkHeader:
    first = _require(fields, "first", (int,), stream)
    n = _require(fields, "n", (int,), stream)
    t_ns = _require(fields, "t_ns", (int,), stream)
    if first < 0 or n <= 0:
        raise WireError("bad_header", f"chunk needs first >= 0 and n > 0, got {first}, {n}", stream)
    return ChunkHeader(stream=stream, seq=seq, first=first, n=n, t_ns=t_ns)


def _decode_stop(fields: dict, stream: str, seq: int) -> StopHeader:
    n_total = fields.get("n_total")
    if n_total is not None and (isinstance(n_total, bool) or not isinstance(n_total, int)):
        raise WireError("bad_header", f"n_total must be an int or absent, got {n_total!r}", stream)
    return StopHeader(stream=stream, seq=seq, n_total=n_total)


def decode_header(raw: bytes) -> Header:
    """Parse and validate a header; raises :class:`WireError` naming what is wrong."""
    fields = _unpack_map(bytes(raw))
    stream, kind, seq = _decode_common(fields)
    if kind == "start":
        return _decode_start(fields, stream, seq)
    if kind == "chunk":
        return _decode_chunk(fields, stream, seq)
    if kind == "stop":
        return _decode_stop(fields, stream, seq)
    raise WireError("bad_header", f"kind must be start/chunk/stop, got {kind!r}", stream)


def decode_payload(
    chunk: ChunkHeader,
    start: StartHeader,
    payload: Any,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> np.ndarray:
    """View a chunk's payload as an array of shape ``(n, *start.shape)`` without copying.

    Raises :class:`WireError` (``oversize`` / ``truncated_payload``) when its size does not
    match what the ``start`` header declared for ``chunk.n`` lines/frames.
    """
    buffer = memoryview(payload)
    expected = chunk.n * start.item_bytes
    if expected > max_payload_bytes or buffer.nbytes > max_payload_bytes:
        raise WireError(
            "oversize",
            f"chunk of {max(expected, buffer.nbytes)} bytes exceeds limit {max_payload_bytes}",
            chunk.stream,
        )
    if buffer.nbytes != expected:
        code = "truncated_payload" if buffer.nbytes < expected else "shape"
        raise WireError(
            code,
            f"payload is {buffer.nbytes} bytes but n={chunk.n} x shape {list(start.shape)} "
            f"x {start.dtype} needs {expected} bytes",
            chunk.stream,
        )
    array = np.frombuffer(buffer, dtype=start.dtype)
    return array.reshape((chunk.n, *start.shape))
