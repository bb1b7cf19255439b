"""Spot clients that connect to the ingest but cannot speak wire version 2.

A publisher of castream before wire v2 uses a PUSH socket, which ZeroMQ does not let talk to
the ingest's ROUTER: the connection is accepted, then dropped in the handshake, and that
publisher would wait silently. :class:`PeerMonitor` watches the ROUTER's connection events and
reports each such handshake failure, so the person at the receiving end learns about it.
"""

from __future__ import annotations

import zmq
from zmq.utils.monitor import recv_monitor_message

_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
INCOMPATIBLE_PEER = (
    "a client connected but failed the ZeroMQ handshake: not a castream wire-v2 publisher (a "
    "PUSH publisher of castream before wire v2? upgrade it) -- its data is not received")


class PeerMonitor:
    """Connection events of one socket; :meth:`failed_handshakes` counts new failures."""

    def __init__(self, socket: zmq.Socket) -> None:
        self._socket = socket
        self.monitor = socket.get_monitor_socket(_EVENTS)
        self._pending = 0  # accepted connections whose handshake has not succeeded yet

    def failed_handshakes(self) -> int:
        """Read the events that arrived; the number of connections dropped in the handshake."""
        failed = 0
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)["event"]
            if event == zmq.EVENT_ACCEPTED:
                self._pending += 1
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._pending = max(0, self._pending - 1)
            elif event == zmq.EVENT_DISCONNECTED and self._pending:
                self._pending -= 1
                failed += 1
        return failed

    def close(self) -> None:
        self._socket.disable_monitor()
        self.monitor.close(linger=0)
