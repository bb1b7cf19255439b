"""Refuse to expose an unauthenticated socket beyond this machine unless asked to.

Without ZeroMQ CURVE (``--curve-dir``, :mod:`acquisition.curve`) anyone who can reach an
exposed ingest can start streams and anyone who can reach the event PUB can read them.
``serve`` and ``ingest`` therefore bind only loopback (``tcp://127.0.0.1``, ``localhost``,
``[::1]``) and ``ipc://`` addresses unless CURVE keys or ``--insecure`` are given.
"""

from __future__ import annotations

import re

_LOCAL = re.compile(r"^(ipc|inproc)://|^tcp://(127\.\d+\.\d+\.\d+|localhost|\[::1\]):")


def is_local(endpoint: str) -> bool:
    """The address can only be reached from this machine."""
    return bool(_LOCAL.match(endpoint))


def check_exposure(endpoints: dict[str, str | None], insecure: bool,
                   authenticated: bool = False) -> None:
    """Raise ``ValueError`` naming the first non-local address unless ``insecure`` or
    ``authenticated`` (CURVE keys given)."""
    for flag, endpoint in endpoints.items():
        if endpoint and endpoint != "none" and not is_local(endpoint) and not insecure \
                and not authenticated:
            raise ValueError(
                f"{flag} {endpoint} would be reachable from other machines without "
                "authentication; bind a loopback or ipc:// address, give CURVE keys with "
                "--curve-dir DIR (`castream keys DIR`), or pass --insecure on a trusted "
                "network")
