"""Streaming a simulated recording live through a publisher (``start`` / ``send`` / ``stop``).

The publisher is duck-typed so that the simulator does not depend on the Publisher SDK's
internals: any object with ``start(**kw)``, ``send(array)`` and ``stop()`` works. ``start``
receives ``mode`` (``"linescan"`` | ``"frames"``), ``dtype``, ``shape`` (one line or frame),
``pixel_um``, ``dt_ms``, ``blank``, ``cell`` and ``metadata`` — only the keywords its
signature accepts (all of them if it takes ``**kwargs``).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .recording import Recording

log = logging.getLogger(__name__)


def _send_paced(pub: PublisherLike, rec: Recording, rate: float, step: int) -> int:
    t0, sent = time.monotonic(), 0
    for first in range(0, rec.data.shape[0], step):
        if 0 < rate < float("inf"):
            delay_s = first * rec.dt_ms / 1e3 / rate - (time.monotonic() - t0)
            if delay_s > 0:
                time.sleep(delay_s)
        chunk = rec.data[first:first + step]
        pub.send(chunk)
        sent += chunk.shape[0]
    return sent


class PublisherLike(Protocol):
    """What :func:`stream_recording` needs from a publisher."""

    def start(self, **kwargs: Any) -> Any: ...
    def send(self, array: Any) -> Any: ...
    def stop(self) -> Any: ...


def _accepted_kwargs(method: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def _open(target: PublisherLike | Callable[[], PublisherLike] | str,
          stream: str) -> tuple[PublisherLike, bool]:
    """The publisher to use and whether this module created it (and must close it)."""
    if isinstance(target, str):
        from acquisition.publisher import Publisher  # lazy: only when streaming to an endpoint

        return Publisher(target, stream=stream), True
    if hasattr(target, "send"):
        return target, False  # type: ignore[return-value]
    return target(), True  # made here from the factory: closed here


def start_kwargs(rec: Recording) -> dict[str, Any]:
    """The ``start`` keywords describing ``rec``."""
    return {"mode": rec.stream_kind.wire_mode, "dtype": str(rec.data.dtype),
            "shape": tuple(rec.data.shape[1:]), "pixel_um": rec.pixel_um, "dt_ms": rec.dt_ms,
            "blank": rec.blank, "cell": rec.cell,
            "metadata": {"phenotype": rec.phenotype, "source": "simulator", **rec.metadata}}


def stream_recording(rec: Recording, publisher: PublisherLike | Callable[[], PublisherLike] | str,
                     rate: float = 1.0, chunk_ms: float = 20.0, stream: str | None = None) -> int:
    """Send ``rec.data`` in chunks of about ``chunk_ms``, paced at ``rate`` × real time.

    Parameters
    ----------
    publisher
        A publisher object, a zero-argument factory returning one, or a ZeroMQ endpoint
        (then ``acquisition.publisher.Publisher(endpoint, stream=...)`` is used).
    rate
        Multiple of real time (1.0 = as acquired); ``0`` or ``inf`` sends as fast as possible.
    stream
        Stream id when an endpoint is given (default: the cell id).

    Returns
    -------
    int
        Number of lines/frames sent.
    """
    pub, owned = _open(publisher, stream or rec.cell)
    try:
        pub.start(**_accepted_kwargs(pub.start, start_kwargs(rec)))
        sent = _send_paced(pub, rec, rate, max(1, round(chunk_ms / rec.dt_ms)))
        pub.stop()
    finally:
        if owned and hasattr(pub, "close"):
            pub.close()
    log.info("streamed %d %ss of %s at %.3g× real time", sent, rec.stream_kind.item_name, rec.cell,
             rate)
    return sent
