"""Analysis lag in seconds of wall clock: how old the oldest not-yet-analysed data is.

Counting lag as ``lag_frames × dt`` (frames received but not final) misses everything that
waits *before* the ingest: under back-pressure the data sit in the publisher and in ZeroMQ's
queues, so the count stays small while the analysis is many seconds behind. Each chunk carries
its acquisition time (``t_ns``, the publisher's clock); the lag is the age of the oldest chunk
whose frames are not all final yet. The publisher's clock may differ from ours: the smallest
``arrival − t_ns`` seen on the stream (the fastest a chunk ever got here) is taken as the
clock offset, so the lag is measured against the quickest possible delivery.

The lag includes the method's built-in look-ahead (a frame cannot be final before the frames
after it arrived); when the publisher pauses, the oldest pending chunk ages, so the lag grows
while the input rate is 0 -- the dashboard shows both.
"""

from __future__ import annotations

import math
from collections import deque


class WallClockLag:
    """Pending chunks of one stream, oldest first, as ``(end_frame, acquired_s)``."""

    def __init__(self) -> None:
        self._pending: deque[tuple[int, float]] = deque()
        self._offset_s = math.inf  # min(arrival - acquisition) over the stream

    def add_chunk(self, first: int, n: int, acquired_s: float, arrived_s: float) -> None:
        """A chunk ``[first, first + n)`` acquired at ``acquired_s`` (publisher clock, 0 =
        unknown) that arrived at ``arrived_s`` (our clock)."""
        if not acquired_s or not math.isfinite(acquired_s):
            acquired_s = arrived_s
        self._offset_s = min(self._offset_s, arrived_s - acquired_s)
        self._pending.append((first + n, acquired_s))

    def lag_s(self, frames_final: int, now_s: float) -> float:
        """Seconds since the oldest chunk not yet fully final was acquired (0 when none)."""
        while self._pending and self._pending[0][0] <= frames_final:
            self._pending.popleft()
        if not self._pending:
            return 0.0
        return max(0.0, now_s - (self._pending[0][1] + self._offset_s))
