"""Streams whose publisher has gone silent: closed after an idle timeout, marked abandoned.

A publisher killed without a stop (``kill -9``, a crashed acquisition PC, a pulled cable)
would leave its stream open in the receiver for ever: its recording unfinished, its analysis
never flushed, its id unusable. The ingest closes a running stream that has sent nothing for
``stream_idle_timeout_s`` (counted from its last message, or from the last moment the ingest
itself was blocked by a full analysis queue, when publishers cannot send), finalizes its
recording with everything received, and hands the engine a stop marked ``abandoned``.
"""

from __future__ import annotations

from collections.abc import Iterable

from acquisition.ingest_state import StreamState

ABANDONED = "abandoned"  # refusal code for data of a stream closed as abandoned
DEFAULT_STREAM_IDLE_TIMEOUT_S = 300.0
CHECK_EVERY_S = 0.5  # how often the receive loop looks for idle streams


def idle_streams(streams: Iterable[StreamState], now_s: float, timeout_s: float | None,
                 busy_until_s: float = 0.0) -> list[StreamState]:
    """Running streams without a message for more than ``timeout_s`` (``None``/0: never)."""
    if not timeout_s:
        return []
    return [state for state in streams
            if now_s - max(state.stats.last_receive_s or 0.0, busy_until_s) > timeout_s]


def abandoned_message(stream: str, timeout_s: float) -> str:
    """Why a stream was closed without its stop."""
    return (f"stream {stream!r} sent nothing for {timeout_s:g} s (its publisher stopped "
            "without a stop?): closed as abandoned, its recording finalized with everything "
            "received; start it again to send more")
