"""Bounded memory per stream: the most recent events and running counts, never the whole list.

``serve`` runs for days; the store is the record of every event. In memory a stream keeps
only an :class:`EventWindow`: the last :data:`RECENT_EVENTS` events (for the end-of-stream
summary's parameter medians and the demo's table) and counts by kind, updated incrementally
(the statistics writer reads the counts instead of recounting every spark each second).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable

from .events import Event

#: events kept in memory per stream (≈ 1 KiB each); older ones are only in the store
RECENT_EVENTS = 2048


class EventWindow:
    """The last ``size`` events of one stream and the counts of all of them by kind."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self.recent: deque[Event] = deque(maxlen=size)
        self.counts: Counter[str] = Counter()

    def add(self, events: Iterable[Event]) -> None:
        """Events just emitted, in event-id order."""
        for event in events:
            self.recent.append(event)
            self.counts[event.kind] += 1

    @property
    def n_events(self) -> int:
        """Events emitted so far (all of them, not only the window)."""
        return sum(self.counts.values())
