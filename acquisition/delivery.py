"""What a publisher tells its caller: the delivery report of a stream and the errors it raises.

A :class:`~acquisition.publisher.Publisher` never reports success for data that was not
recorded: :meth:`~acquisition.publisher.Publisher.stop` returns a :class:`DeliveryReport` built
from the receiver's last acknowledgement (:func:`report_from_ack`), or raises
:class:`DeliveryError` (not everything sent was received and recorded),
:class:`PublisherRefused` (the receiver refused a message, with its code) or
:class:`PublisherTimeout` (the receiver did not take or answer a message in time);
:class:`PublisherError` is wrong data or call order on the caller's side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class PublisherError(ValueError):
    """Data or call order that does not match what :meth:`Publisher.start` declared."""


class PublisherTimeout(TimeoutError):
    """The receiver did not take or did not answer a message in time; nothing was dropped
    silently -- the caller decides whether to retry or abort."""


class PublisherRefused(PublisherError):
    """The receiver refused a message of this stream (``code`` says why)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DeliveryReport:
    """What the receiver confirmed at the end of a stream (lines/frames)."""

    stream: str
    sent: int
    received: int
    recorded: int | None  # None: the receiver does not record
    missing_frames: int = 0
    missing: list[list[int]] = field(default_factory=list)  # [start, end) ranges (first 64)
    recording: str | None = None  # base path of the recording on the receiver
    failure: str | None = None

    @property
    def complete(self) -> bool:
        """Everything sent (and declared) was received and, when the receiver records,
        recorded."""
        recorded_all = self.recorded is None or self.recorded >= self.sent
        return (self.received >= self.sent and recorded_all and self.failure is None
                and self.missing_frames == 0)

    def describe(self) -> str:
        recorded = "not recorded (receiver does not record)" if self.recorded is None else (
            f"{self.recorded} recorded")
        text = f"stream {self.stream!r}: {self.sent} sent, {self.received} received, {recorded}"
        if self.missing_frames:
            text += f", {self.missing_frames} missing in {self.missing}"
        return text + (f"; {self.failure}" if self.failure else "")


class DeliveryError(PublisherError):
    """The stream ended but not everything sent was received and recorded."""

    def __init__(self, report: DeliveryReport):
        super().__init__(f"delivery incomplete: {report.describe()}")
        self.report = report


def report_from_ack(stream: str, sent: int, ack: dict[str, Any]) -> DeliveryReport:
    """The report of ``sent`` lines/frames of ``stream``, by the receiver's last ``ack``."""
    return DeliveryReport(
        stream=stream, sent=sent, received=int(ack.get("received", 0)),
        recorded=int(ack.get("recorded", 0)) if ack.get("recording") else None,
        missing_frames=int(ack.get("missing_frames", 0)), missing=ack.get("missing") or [],
        recording=ack.get("path"), failure=ack.get("failure"))
