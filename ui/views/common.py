"""Helpers shared by the page sections: error guard and number formatting."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

log = logging.getLogger(__name__)


@contextmanager
def guarded(section: str) -> Iterator[None]:
    """Run one page section; any error becomes a short ``st.error``, never a traceback.

    Streamlit's own control flow (rerun/stop) derives from ``BaseException`` and passes.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the page must keep rendering
        log.exception("dashboard section %r failed", section)
        st.error(f"Could not show {section}: {type(exc).__name__}: {_short(str(exc))}")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value, digits: int = 1, unit: str = "") -> str:
    """``value`` with ``digits`` decimals and a unit, or an em dash when unknown/NaN."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(value):
        return "—"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def count(value) -> str:
    """An integer count, or an em dash when unknown."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{int(value):,}" if math.isfinite(value) else "—"


def clock(epoch_s: float | None) -> str:
    """Local wall-clock time ``HH:MM:SS`` of an epoch time, or an em dash."""
    if epoch_s is None:
        return "—"
    return time.strftime("%H:%M:%S", time.localtime(float(epoch_s)))


def ago(epoch_s: float | None, now_s: float | None = None) -> str:
    """``"12 s ago"`` / ``"3 min ago"`` / ``"2.0 h ago"``."""
    if epoch_s is None:
        return "never"
    seconds = max(0.0, (time.time() if now_s is None else now_s) - float(epoch_s))
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
