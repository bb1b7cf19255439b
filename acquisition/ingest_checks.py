"""The ingest's limits on what it accepts, as pure checks raising :class:`WireError`.

Each names the offending field and the limit, with its own code (also the counter name):
``bad_frames``, ``oversize``, ``restart``, ``too_many_streams``, ``shape``, ``sequence``,
``gap_too_large``, and for image streams ``image_chunks`` and ``nonfinite_image``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zmq

from acquisition.ingest_state import StreamState
from acquisition.wire import ChunkHeader, StartHeader, WireError


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
