"""The ingest's limits on what it accepts, as pure checks raising :class:`WireError`.

Each names the offending field and the limit, with its own code (also the counter name):
``bad_frames``, ``oversize``, ``restart``, ``too_many_streams``, ``shape``, ``sequence``,
``gap_too_large``; for data of a stream that is not the sender's to send ``unknown_stream``,
``foreign_stream`` and ``abandoned``; for a stream that failed, its failure's code; for image
streams ``image_chunks`` and ``nonfinite_image``. A payload that does not fit its header is
refused by :func:`~acquisition.wire.decode_payload`, with its own codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zmq

from acquisition.ingest_idle import ABANDONED, abandoned_message
from acquisition.ingest_state import StreamState
from acquisition.wire import ChunkHeader, StartHeader, WireError, decode_payload


def check_frames(header: Any, frames: list[zmq.Frame], max_payload_bytes: int) -> None:
    """``frames`` = ``[header, payload]`` (the sender's identity already taken off)."""
    if len(frames) != 2:
        raise WireError("bad_frames", f"expected [header, payload], got {len(frames)} frames",
                        header.stream)
    size = frames[1].buffer.nbytes
    if size > max_payload_bytes:
        raise WireError("oversize", f"payload of {size} bytes exceeds limit "
                        f"{max_payload_bytes}", header.stream)
    if size and not isinstance(header, ChunkHeader):
        raise WireError("bad_frames", f"{header.kind} message must have an empty payload, "
                        f"got {size} bytes", header.stream)


def check_start(header: StartHeader, running: dict[str, StreamState], max_streams: int,
                max_payload_bytes: int) -> None:
    """A start may open a new stream: name free, under the stream cap, frames fit a message."""
    if header.stream in running:
        raise WireError("restart", f"stream {header.stream!r} is already running; start "
                        "refused (send stop first, or use another stream id)", header.stream)
    if len(running) >= max_streams:
        raise WireError("too_many_streams", f"{len(running)} streams are running, the "
                        f"limit is {max_streams}; start of {header.stream!r} refused",
                        header.stream)
    if header.item_bytes > max_payload_bytes:
        raise WireError("shape", f"one {header.stream_kind.item_name} "
                        f"of shape {list(header.shape)} is {header.item_bytes} bytes, more "
                        f"than the message limit of {max_payload_bytes}", header.stream)


def check_running(running: dict[str, StreamState], stream: str, kind: str, identity: bytes,
                  abandoned: bool, idle_timeout_s: float | None) -> StreamState:
    """The running stream that a ``kind`` message (chunk or stop) names, sent by the connection
    that started it (``identity``); ``abandoned``: the id was closed after its idle timeout."""
    state = running.get(stream)
    if state is None and abandoned:
        raise WireError(ABANDONED, abandoned_message(stream, idle_timeout_s), stream)
    if state is None:
        raise WireError("unknown_stream", f"{kind} for stream {stream!r}, which is not "
                        "running (no start received, the receiver restarted, or already "
                        "stopped)", stream)
    if state.owner != identity:
        raise WireError("foreign_stream", f"{kind} for stream {stream!r} from a connection "
                        "that did not start it; refused", stream)
    return state


def check_chunk(state: StreamState, header: ChunkHeader, payload: Any, max_payload_bytes: int,
                max_stream_bytes: int, max_gap_bytes: int) -> np.ndarray:
    """A chunk's data (a read-only view of ``payload``), if its stream may take it: not
    failed earlier, a payload that fits the header, in position, and for an image stream the
    whole image."""
    if state.failure is not None:
        raise WireError(state.failure[0], f"stream {header.stream!r} failed earlier and "
                        f"takes no more data: {state.failure[1]}", header.stream)
    data = decode_payload(header, state.header, payload, max_payload_bytes)
    check_position(state, header, max_stream_bytes, max_gap_bytes)
    if state.header.stream_kind.is_image:
        check_image_chunk(state, header, data)
    return data


def check_position(state: StreamState, header: ChunkHeader, max_stream_bytes: int,
                   max_gap_bytes: int) -> None:
    """A chunk lies within the stream size limit and not too far beyond its end."""
    item_bytes = state.header.item_bytes
    if (header.first + header.n) * item_bytes > max_stream_bytes:
        raise WireError("sequence", f"chunk first={header.first} lies beyond the stream "
                        f"size limit of {max_stream_bytes} bytes", header.stream)
    gap = header.first - state.next_first
    if gap * item_bytes > max_gap_bytes:
        raise WireError("gap_too_large", f"chunk first={header.first} would leave a gap of "
                        f"{gap} items after {state.next_first} ({gap * item_bytes} bytes, "
                        f"limit {max_gap_bytes})", header.stream)


def count_nonfinite(data: np.ndarray) -> int:
    """NaN/Inf values in a chunk (0 for integer types)."""
    if data.dtype.kind != "f":
        return 0
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def check_image_chunk(state: StreamState, header: ChunkHeader, data: np.ndarray) -> None:
    """An image stream (wire mode ``image``) takes exactly one chunk, the whole image:
    ``first = 0``, ``n`` planes (one for a labels image), every pixel finite. Refused before
    it is recorded, so its publisher learns at once that nothing was kept."""
    if header.first != 0 or state.next_first != 0:
        raise WireError("image_chunks", f"image stream {header.stream!r} takes exactly one "
                        f"chunk (first=0, n=planes); got first={header.first} after "
                        f"{state.next_first} planes", header.stream)
    if state.header.content == "labels" and header.n != 1:
        raise WireError("shape", f"a labels image is one plane (Y, X); got {header.n} planes",
                        header.stream)
    bad = count_nonfinite(data)
    if bad:
        raise WireError("nonfinite_image", f"image of stream {header.stream!r} has {bad} "
                        "NaN/Inf pixels; a structure image must be finite", header.stream)
