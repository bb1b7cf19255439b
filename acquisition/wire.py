"""The castream wire format: one versioned schema for every message on the socket.

A message is a ZeroMQ multipart ``[header, payload]``:

* ``header`` is a msgpack map. Every header has ``v`` (schema version), ``kind``
  (``"start"`` | ``"chunk"`` | ``"stop"``), ``stream`` (stream id) and ``seq``
  (per-stream message counter, starting at 0 with the ``start`` message).
* ``start`` also carries ``mode`` (``"linescan"`` | ``"frames"`` | ``"image"``), ``dtype``,
  ``shape`` of one line ``[X]``, one frame ``[Y, X]`` or one image plane ``[Y, X]``,
  ``pixel_um``, ``dt_ms`` (line or frame interval), optional ``blank`` (camera/PMT offset,
  in counts), optional ``cell`` id and free ``metadata``.
* Since version 3 a ``start`` may name its ``field`` (1-128 characters): streams of one
  field of view share it (a Ca²⁺ stream and the structure image its events are attributed
  to). Mode ``image`` (version 3) is a structure image: a 2-D field ``(Y, X)`` or a z-stack
  ``(Z, Y, X)`` sent as exactly one chunk with ``first = 0`` and ``n`` = number of planes
  (1 for a 2-D image); ``dt_ms`` is optional for it (absent: :data:`IMAGE_DT_MS`, the
  plane interval its recording states) and ``content`` says what it shows: ``"structure"``
  (default: a Z-disc marker image to find and score cells in) or ``"labels"`` (an integer
  ROI image, 0 = background, for the next structure image of the same ``field``).
* ``chunk`` also carries ``first`` (index of its first line/frame in the stream), ``n``
  (number of lines/frames) and ``t_ns`` (acquisition time of the first one, ns since epoch).
  Since version 2 a chunk may name its ``dtype`` (the SDK always does), which must then equal
  the start's: bytes of the right size but another type are refused.
* ``stop`` may carry ``n_total`` (lines/frames the producer sent).
* ``payload`` is the chunk's raw C-order bytes (``n * prod(shape)`` items of ``dtype``);
  ``start`` and ``stop`` have an empty payload. Nothing is ever pickled.

Delivery is acknowledged (version 2): publishers connect a DEALER socket to the ingest's
ROUTER, and the ingest answers on the same connection with one-frame msgpack replies
(:func:`encode_reply` / :func:`decode_reply`):

* ``ack``: ``stream``, ``seq`` (every message of the stream up to this one is handled:
  received and, when the receiver records, written to the recording), ``received``,
  ``recorded`` (lines/frames), ``recording`` (whether the receiver records), ``missing``
  (ranges ``[start, end)`` not received), ``final`` (true once the stop is handled and the
  recording closed);
* ``refused``: ``stream`` (or nil), ``seq``, ``code`` and ``message`` -- the message was not
  accepted (bad input, a stream owned by another connection, a failed recording...).

Calibration is validated at ``start``: ``pixel_um`` in [0.01, 100], ``dt_ms`` in
[0.01, 10,000], a finite ``blank``.

Producers build headers through :class:`StartHeader`, :class:`ChunkHeader` and
:class:`StopHeader`; the receiver validates with :func:`decode_header` and
:func:`decode_payload`, whose :class:`WireError` names what is wrong in ``code``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from functools import cached_property
from typing import Any, Literal

import msgpack
import numpy as np

from .stream_kind import StreamKind

SCHEMA_VERSION = 3
SUPPORTED_VERSIONS = frozenset({1, 2, 3})
MODES = tuple(kind.wire_mode for kind in StreamKind)  # ("linescan", "frames", "image")
IMAGE_MIN_VERSION = 3  # mode "image", ``field`` and ``content`` came with version 3
IMAGE_CONTENTS = ("structure", "labels")
IMAGE_DT_MS = 1.0  # the nominal plane interval of an image stream (it has no time axis)
MAX_FIELD_ID_CHARS = 128
DTYPES = ("uint8", "uint16", "int16", "uint32", "float32")
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
MAX_STREAM_ID_CHARS = 128
PIXEL_UM_RANGE = (0.01, 100.0)
DT_MS_RANGE = (0.01, 10_000.0)
MAX_FIRST = 1 << 48  # lines/frames; beyond this a chunk index is corrupt
MAX_CHUNK_ITEMS = 1 << 31
REPLY_KINDS = ("ack", "refused")


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
    mode: Literal["linescan", "frames", "image"]
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
    field: str | None = None  # since version 3: the field of view this stream shows
    content: str | None = None  # image streams: "structure" (None means it too) or "labels"

    @property
    def stream_kind(self) -> StreamKind:
        """What the stream is (line-scan, movie or structure image), from its ``mode``."""
        return StreamKind.from_wire_mode(self.mode)

    @cached_property
    def item_bytes(self) -> int:
        """Bytes of one line/frame (computed once: it is asked for every chunk)."""
        return int(np.dtype(self.dtype).itemsize * math.prod(self.shape))


@dataclass(frozen=True)
class ChunkHeader:
    """``n`` consecutive lines/frames starting at index ``first``."""

    stream: str
    seq: int
    first: int
    n: int
    t_ns: int
    dtype: str | None = None  # required since version 2
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
_FIELD_NAMES = {cls: tuple(f.name for f in dataclass_fields(cls))
                for cls in (StartHeader, ChunkHeader, StopHeader)}
_OPTIONAL_START_FIELDS = ("field", "content")  # left out of the map when None (version 3)


def encode_header(header: Header) -> bytes:
    """Serialize a header to msgpack bytes (tuples become arrays)."""
    # a shallow copy of the fields, not ``asdict``'s deep one: a header's values are plain
    # (metadata is a JSON-like dict msgpack walks itself), and this runs for every message
    fields = {name: getattr(header, name) for name in _FIELD_NAMES[type(header)]}
    if isinstance(header, StartHeader):
        fields["shape"] = list(header.shape)
        for name in _OPTIONAL_START_FIELDS:
            if fields[name] is None:
                del fields[name]
    if isinstance(header, ChunkHeader) and header.dtype is None:
        del fields["dtype"]
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


def _decode_common(fields: dict) -> tuple[str, str, int, int]:
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
    if not 0 <= seq < 1 << 63:
        raise WireError("bad_header", f"seq must be in [0, 2**63), got {seq}", stream)
    return stream, kind, seq, version


def _decode_start(fields: dict, stream: str, seq: int, version: int) -> StartHeader:
    mode = _require(fields, "mode", (str,), stream)
    if mode not in MODES:
        raise WireError("bad_header", f"mode must be one of {MODES}, got {mode!r}", stream)
    kind = StreamKind.from_wire_mode(mode)
    if kind.is_image and version < IMAGE_MIN_VERSION:
        raise WireError("bad_header", f"mode 'image' needs wire version {IMAGE_MIN_VERSION}, "
                        f"the header says {version}", stream)
    dtype = _require(fields, "dtype", (str,), stream)
    if dtype not in DTYPES:
        raise WireError("dtype", f"dtype {dtype!r} is not supported (supported: {DTYPES})", stream)
    shape = _decode_shape(fields, kind, stream)
    pixel_um = _in_range(fields, "pixel_um", PIXEL_UM_RANGE, stream)
    if kind.is_image and fields.get("dt_ms") is None:
        dt_ms = IMAGE_DT_MS
    else:
        dt_ms = _in_range(fields, "dt_ms", DT_MS_RANGE, stream)
    blank = fields.get("blank")
    if blank is not None and (isinstance(blank, bool) or not isinstance(blank, (int, float))
                              or not math.isfinite(blank)):
        raise WireError("bad_header", f"blank must be a finite number or absent, got {blank!r}",
                        stream)
    cell = fields.get("cell")
    if cell is not None and not isinstance(cell, str):
        raise WireError("bad_header", f"cell must be a string or absent, got {cell!r}", stream)
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise WireError("bad_header", "metadata must be a map", stream)
    field_id, content = _decode_field_and_content(fields, kind, dtype, version, stream)
    return StartHeader(
        stream=stream, mode=mode, dtype=dtype, shape=tuple(shape), pixel_um=pixel_um,
        dt_ms=dt_ms, blank=None if blank is None else float(blank), cell=cell,
        metadata=metadata, seq=seq, v=version, field=field_id, content=content,
    )


def _decode_shape(fields: dict, kind: StreamKind, stream: str) -> list[int]:
    shape = _require(fields, "shape", (list, tuple), stream)
    want_ndim = kind.item_ndim
    if len(shape) != want_ndim or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 1 << 16 for s in shape
    ):
        what = ("one image plane [Y, X] (a 1-D image is not a structure image; a z-stack "
                "sends its planes as the chunk's n)") if kind.is_image else (
                f"{want_ndim} positive ints")
        raise WireError(
            "shape", f"shape for mode {kind.wire_mode!r} must be {what}, each 1-65536; "
            f"got {shape!r}",
            stream,
        )
    return shape


def _decode_field_and_content(fields: dict, kind: StreamKind, dtype: str, version: int,
                              stream: str) -> tuple[str | None, str | None]:
    """``field`` and ``content`` (version 3; older headers cannot carry them)."""
    field_id, content = fields.get("field"), fields.get("content")
    if version < IMAGE_MIN_VERSION:
        return None, None
    if field_id is not None and (not isinstance(field_id, str)
                                 or not 0 < len(field_id) <= MAX_FIELD_ID_CHARS):
        raise WireError("bad_header", f"field must be a string of 1-{MAX_FIELD_ID_CHARS} "
                        f"characters or absent, got {field_id!r}", stream)
    if content is not None and (not kind.is_image or content not in IMAGE_CONTENTS):
        raise WireError("bad_header", f"content is for mode 'image' only and must be one of "
                        f"{IMAGE_CONTENTS}, got {content!r} (mode {kind.wire_mode!r})", stream)
    if content == "labels" and np.dtype(dtype).kind not in "iu":
        raise WireError("dtype", f"a labels image must have an integer dtype, got {dtype}",
                        stream)
    return field_id, content


def _in_range(fields: dict, name: str, bounds: tuple[float, float], stream: str) -> float:
    value = float(_require(fields, name, (int, float), stream))
    low, high = bounds
    if not math.isfinite(value) or not low <= value <= high:
        raise WireError("calibration", f"{name} must be between {low:g} and {high:g}, got "
                        f"{value:g}", stream)
    return value


def _decode_chunk(fields: dict, stream: str, seq: int, version: int) -> ChunkHeader:
    first = _require(fields, "first", (int,), stream)
    n = _require(fields, "n", (int,), stream)
    t_ns = _require(fields, "t_ns", (int,), stream)
    if not 0 <= first <= MAX_FIRST or not 0 < n <= MAX_CHUNK_ITEMS:
        raise WireError("bad_header", f"chunk needs 0 <= first <= {MAX_FIRST} and "
                        f"0 < n <= {MAX_CHUNK_ITEMS}, got first={first}, n={n}", stream)
    dtype = fields.get("dtype")
    if dtype is not None:
        dtype = _require(fields, "dtype", (str,), stream)
    return ChunkHeader(stream=stream, seq=seq, first=first, n=n, t_ns=t_ns, dtype=dtype,
                       v=version)


def _decode_stop(fields: dict, stream: str, seq: int, version: int) -> StopHeader:
    n_total = fields.get("n_total")
    if n_total is not None and (isinstance(n_total, bool) or not isinstance(n_total, int)
                                or not 0 <= n_total <= MAX_FIRST):
        raise WireError("bad_header", f"n_total must be an int in [0, {MAX_FIRST}] or absent, "
                        f"got {n_total!r}", stream)
    return StopHeader(stream=stream, seq=seq, n_total=n_total, v=version)


def decode_header(raw: bytes) -> Header:
    """Parse and validate a header; raises :class:`WireError` naming what is wrong."""
    fields = _unpack_map(bytes(raw))
    stream, kind, seq, version = _decode_common(fields)
    if kind == "start":
        return _decode_start(fields, stream, seq, version)
    if kind == "chunk":
        return _decode_chunk(fields, stream, seq, version)
    if kind == "stop":
        return _decode_stop(fields, stream, seq, version)
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
    if chunk.dtype is not None and chunk.dtype != start.dtype:
        raise WireError("dtype", f"chunk carries {chunk.dtype} but stream {chunk.stream!r} "
                        f"was started as {start.dtype}", chunk.stream)
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
    array.flags.writeable = False  # shares the message's memory (recorded from it too)
    return array.reshape((chunk.n, *start.shape))


def encode_reply(kind: str, stream: str | None, seq: int | None, **fields: Any) -> bytes:
    """One reply of the ingest to a publisher (``ack`` or ``refused``), as msgpack bytes."""
    if kind not in REPLY_KINDS:
        raise ValueError(f"reply kind must be one of {REPLY_KINDS}, got {kind!r}")
    return msgpack.packb({"v": SCHEMA_VERSION, "kind": kind, "stream": stream, "seq": seq,
                          **fields}, use_bin_type=True)


def decode_reply(raw: bytes) -> dict[str, Any]:
    """Parse a reply; raises :class:`WireError` (``bad_reply``) when it is not one."""
    try:
        fields = msgpack.unpackb(bytes(raw), raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise WireError("bad_reply", f"reply is not valid msgpack: {exc}") from None
    if not isinstance(fields, dict) or fields.get("kind") not in REPLY_KINDS:
        raise WireError("bad_reply", f"not a castream reply: {str(fields)[:80]}")
    return fields
