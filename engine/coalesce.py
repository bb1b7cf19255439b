"""Consecutive small chunks of one stream, already waiting in the ingest queue, analysed as one.

Each :meth:`~engine.analyzer.StreamAnalyzer.push` has a fixed cost (about 6 ms on this
project's 2-core machine, whatever the chunk size: docs/RELIABILITY.md), so a publisher that
sends one line per message was analysed at ~160 messages per second. The analysis does not
depend on how a stream is cut into chunks (tests/test_streaming_equals_batch.py), so the server
joins the chunks that are *already* queued — never waiting for more — while they continue the
same stream without a gap, up to ``MAX_FRAMES`` frames and ``MAX_BYTES`` bytes. The joined
chunk keeps the earliest arrival time (delays are counted from the oldest part).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from acquisition.ingest import ChunkReceived, IngestItem

MAX_FRAMES = 4096
MAX_BYTES = 8 << 20


def coalesce(item: ChunkReceived, next_item: Callable[[], IngestItem | None],
             max_frames: int = MAX_FRAMES,
             max_bytes: int = MAX_BYTES) -> tuple[ChunkReceived, IngestItem | None]:
    """``(joined chunk, the first queued item that did not join, or None)``.

    ``next_item()`` returns the next queued item without waiting (None when there is none).
    """
    parts = [item]
    frames, size = item.header.n, item.data.nbytes
    leftover = None
    while frames < max_frames and size < max_bytes:
        following = next_item()
        if following is None:
            break
        last = parts[-1]
        if not (isinstance(following, ChunkReceived)
                and following.header.stream == last.header.stream
                and following.header.first == last.header.first + last.header.n
                and following.data.dtype == last.data.dtype
                and following.data.shape[1:] == last.data.shape[1:]
                and frames + following.header.n <= max_frames
                and size + following.data.nbytes <= max_bytes):
            leftover = following
            break
        parts.append(following)
        frames += following.header.n
        size += following.data.nbytes
    if len(parts) == 1:
        return item, leftover
    arrivals = [p.t_received for p in parts if p.t_received is not None]
    header = replace(item.header, n=frames, seq=parts[-1].header.seq)
    return (ChunkReceived(header, np.concatenate([p.data for p in parts]),
                          min(arrivals) if arrivals else None), leftover)
