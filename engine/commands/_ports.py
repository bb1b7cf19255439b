"""Check that a TCP port can be bound before starting a server on it.

A server started on a busy port fails deep inside its own machinery (ZeroMQ's ``Address
already in use`` traceback, or Streamlit's "Port ... is not available" buried in its log while
the caller reports success). Checking first gives one line naming the port and the fix.
"""

from __future__ import annotations

import errno
import socket


def check_port_free(host: str, port: int, flag: str) -> None:
    """Raise ``ValueError`` naming ``flag`` and the port when ``host:port`` cannot be bound.

    The probe socket sets ``SO_REUSEADDR`` like the servers do, so a port in ``TIME_WAIT``
    is not mistaken for a busy one; port 0 (any free port) is always fine.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ValueError(
                f"{flag} {port}: port {port} on {host} is {why} (another castream or "
                f"dashboard running?); stop it or choose another port with {flag}") from None
