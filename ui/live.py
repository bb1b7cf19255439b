"""Optional subscriber to the engine's PUB socket: live previews and a liveness clock.

A daemon thread receives ``[topic, msgpack]`` messages (topics ``stream``, ``event``,
``stats``, ``cell``, ``preview``; see docs/ARCHITECTURE.md "Store schema and PUB topics") and
keeps, per stream, the recent preview strips and the time of the last message. The SUB side
has a bounded receive queue, so a slow dashboard drops previews and never slows the engine
(the PUB side sends with NOBLOCK).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Preview strips kept per stream (enough for several seconds of kymograph).
MAX_STRIPS = 256


@dataclass(frozen=True)
class PreviewStrip:
    """One ``preview`` message in ΔF/F0.

    Line-scans: ``image`` row i is line ``first + i * step``. Movies: ``image`` is frame ``first``.
    """

    first: int
    step: int
    image: np.ndarray  # float32 (rows, cols)

    @property
    def end(self) -> int:
        """One past the last frame index covered."""
        return self.first + self.image.shape[0] * self.step


def decode_preview(body: dict) -> PreviewStrip:
    """The ΔF/F0 image of a ``preview`` message body (uint8 → lo..hi)."""
    shape = tuple(int(n) for n in body["shape"])
    raw = np.frombuffer(body["data"], dtype=np.uint8).reshape(shape)
    lo, hi = float(body.get("lo", 0.0)), float(body.get("hi", 1.0))
    image = (lo + raw.astype(np.float32) / 255.0 * (hi - lo)).astype(np.float32)
    return PreviewStrip(int(body.get("first", 0)), max(1, int(body.get("step", 1))), image)


def assemble_kymograph(strips: list[PreviewStrip], window_frames: int) -> tuple[np.ndarray, int, int]:
    """Paste the strips of the last ``window_frames`` frames into one image.

    Strips may overlap and use different row steps; each strip row covers ``step`` frames.
    Returns ``(image, first_frame, step)`` at the newest strip's step; rows that no strip
    covered are NaN (gaps stay visible).
    """
    step = strips[-1].step
    n_cols = strips[-1].image.shape[1]
    end = max(s.end for s in strips)
    start = max(min(s.first for s in strips), end - window_frames)
    start -= (start - strips[-1].first) % step  # keep the newest strip's rows aligned
    n_rows = max(1, -(-(end - start) // step))
    image = np.full((n_rows, n_cols), np.nan, dtype=np.float32)
    for strip in strips:
        if strip.end <= start or strip.image.shape[1] != n_cols:
            continue
        offsets = np.arange(strip.image.shape[0] * strip.step)
        rows = (strip.first + offsets - start) // step
        keep = (rows >= 0) & (rows < n_rows)
        image[rows[keep]] = strip.image[offsets[keep] // strip.step]
    return image, start, step


class PubSubscriber:
    """Background SUB socket connected to ``endpoint`` (started at construction)."""

    def __init__(self, endpoint: str, rcvhwm: int = 2000, curve=None) -> None:
        """``curve``: :class:`~acquisition.curve.CurveClient` keys for an engine that
        publishes with CURVE (``serve --curve-dir``)."""
        import zmq

        self.endpoint = endpoint
        self._strips: dict[str, deque[PreviewStrip]] = {}
        self._last_message_s: dict[str, float] = {}
        self.last_any_s: float | None = None
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        if curve is not None:
            curve.apply(self._socket)
        self._socket.connect(endpoint)
        self._thread = threading.Thread(target=self._loop, name="castream-ui-sub", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from engine.sinks.publish import decode

        while not self._stop.is_set():
            if not self._socket.poll(200):
                continue
            try:
                topic, body = decode(self._socket.recv_multipart())
                self._handle(topic, body)
            except Exception as exc:  # noqa: BLE001 - a bad message must not kill the thread
                self.errors += 1
                log.warning("PUB %s: bad message skipped: %s", self.endpoint, exc)
        self._socket.close(linger=0)

    def _handle(self, topic: str, body: dict) -> None:
        stream = str(body.get("stream", ""))
        now = time.time()
        with self._lock:
            self.last_any_s = now
            self._last_message_s[stream] = now
            if topic == "preview":
                strips = self._strips.setdefault(stream, deque(maxlen=MAX_STRIPS))
                strip = decode_preview(body)
                if strips and strip.first < strips[-1].first:
                    strips.clear()  # the stream restarted from frame 0
                strips.append(strip)

    def strips(self, stream: str) -> list[PreviewStrip]:
        """The preview strips received for ``stream`` (oldest first)."""
        with self._lock:
            return list(self._strips.get(stream, ()))

    def last_message_s(self, stream: str) -> float | None:
        """Time (epoch s) of the last message about ``stream`` or None."""
        with self._lock:
            return self._last_message_s.get(stream)

    def close(self) -> None:
        """Stop the thread (it closes the socket)."""
        self._stop.set()
        self._thread.join(timeout=1.0)
