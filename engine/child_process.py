"""Stopping a child process (the dashboard's Streamlit server, a launched stream) for sure.

A child that is busy (a dashboard rendering a page) can take more than a few seconds to act on
a signal, and one that hangs in its shutdown must not outlive its parent: each signal of
``signals`` is sent in turn, with ``grace_s`` to act on it, until the child has ended.
"""

from __future__ import annotations

import logging
import signal
import subprocess

log = logging.getLogger(__name__)

#: what a terminal's Ctrl-C does first, then the polite and the certain stop
CTRL_C_FIRST = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
TERMINATE_FIRST = (signal.SIGTERM, signal.SIGKILL)


def stop_child(process: subprocess.Popen, grace_s: float = 10.0,
               signals: tuple[signal.Signals, ...] = TERMINATE_FIRST) -> None:
    """Send ``signals`` to ``process`` one after the other, waiting up to ``grace_s`` after
    each, until it has ended (nothing if it already has)."""
    for number in signals:
        if process.poll() is not None:
            return
        process.send_signal(number)
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop within %.0f s of %s", process.pid, grace_s,
                        signal.Signals(number).name)
