"""What the engine is doing with a live stream, told apart for the page's warnings.

* ``gone``: the engine has written nothing about the stream for ``stale_s`` (it writes a
  statistics sample every second while it runs, even when it lags) -- stopped or crashed;
* ``behind``: it writes, but its wall-clock lag (``lag_s``, :mod:`engine.wall_lag`) exceeds
  the look-ahead by more than ``BEHIND_MARGIN_S``: analysis is slower than acquisition and
  catches up later (nothing is lost: the recording is complete);
* ``feed_silent``: the engine is up to date but its live feed (``--events``) brought nothing
  for ``stale_s``: the address is probably not the engine's ``--publish``;
* ``ok`` otherwise, and ``stopped`` for a stream that has ended.
"""

from __future__ import annotations

import math
import time

from ui.data import is_stale

BEHIND_MARGIN_S = 2.0


def lag_s(stats: dict | None) -> float:
    """The engine's wall-clock lag in seconds (NaN when the engine does not report it)."""
    try:
        return float((stats or {}).get("lag_s"))
    except (TypeError, ValueError):
        return math.nan


def is_behind(stream: dict, stats: dict | None) -> bool:
    """Lag beyond the built-in look-ahead plus :data:`BEHIND_MARGIN_S`."""
    lookahead_s = float((stats or {}).get("lookahead_ms") or stream.get("lookahead_ms") or 0) / 1e3
    lag = lag_s(stats)
    return math.isfinite(lag) and lag > lookahead_s + BEHIND_MARGIN_S


def engine_state(stream: dict, stats: dict | None, stale_s: float, feed_endpoint: str = "",
                 feed_last_s: float | None = None, now_s: float | None = None) -> str:
    """``stopped`` | ``gone`` | ``behind`` | ``feed_silent`` | ``ok`` (see module doc)."""
    now_s = time.time() if now_s is None else now_s
    if not stream.get("live"):
        return "stopped"
    if is_stale(stream, stats, stale_s, now_s):
        return "gone"
    if is_behind(stream, stats):
        return "behind"
    if feed_endpoint and (feed_last_s is None or now_s - feed_last_s > stale_s):
        return "feed_silent"
    return "ok"
