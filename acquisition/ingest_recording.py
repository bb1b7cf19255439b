"""The ingest's raw recording of each stream, acknowledged once written.

The link between the receive thread, the :class:`~acquisition.recorder.RawRecorder` (its writer
thread writes chunks in order through a bounded queue) and the
:class:`~acquisition.ingest_replies.ReplyBook`: a chunk is acknowledged once it is in the
recording (at once when the ingest does not record) and counted in ``frames_recorded``; a
failed write fails the stream and is refused back to its owner at once; a stream's end is
acknowledged once its recording is synced and closed, and ``recording_done`` is set then.
"""

from __future__ import annotations

from typing import Any

from acquisition.ingest_counters import IngestCounters
from acquisition.ingest_replies import ReplyBook
from acquisition.ingest_state import StreamState
from acquisition.recorder import RawRecorder
from acquisition.wire import ChunkHeader


class RecordingAcks:
    """Writes the streams' chunks to ``recorder`` (``None``: no recording) and acknowledges
    them through ``replies``."""

    def __init__(self, recorder: RawRecorder | None, replies: ReplyBook,
                 counters: IngestCounters) -> None:
        self.recorder = recorder
        self._replies = replies
        self._counters = counters

    def write(self, state: StreamState, header: ChunkHeader, payload: Any, new: int) -> None:
        """Record a chunk with ``new`` items not received before; acknowledge once written."""
        if self.recorder is None:
            self._replies.done(state, header.seq, wake=False)
            return
        self.recorder.write(
            header.stream, header.first, header.n, payload,
            on_written=lambda: self._count_recorded(state, new, header.seq),
            on_failed=lambda exc: self._record_failed(state, exc))

    def after_recorded(self, state: StreamState, seq: int) -> None:
        """Acknowledge ``seq`` once everything queued before it is in the recording."""
        if self.recorder is None:
            self._replies.done(state, seq, wake=False)
        else:
            self.recorder.after_writes(lambda: self._replies.done(state, seq))

    def flush(self) -> None:
        """Wait until every chunk handed on so far is written (its counters included)."""
        if self.recorder is not None:
            self.recorder.flush()

    def finish(self, state: StreamState, n_total: int | None, stopped: bool,
               seq: int | None = None) -> None:
        """Close the stream's recording (``stopped``: by its stop, whose ``seq`` is then
        acknowledged as final once the recording is closed)."""
        if self.recorder is None or not self.recorder.is_recording(state.header.stream):
            if seq is not None:
                self._replies.done(state, seq, final=True, wake=False)
            return

        def closed(error: OSError | None) -> None:
            if error is not None:
                self._replies.fail(state, "record_failed", f"closing the recording failed: "
                                   f"{error}")
            if seq is not None:
                self._replies.done(state, seq, final=True)

        future = self.recorder.finish(state.header.stream, n_total, stopped=stopped,
                                      on_closed=closed)
        stats = state.stats

        def mark_done(_future: Any) -> None:
            if _future.exception() is not None:
                self._counters.count_error(stats.stream, "record_failed",
                                           f"{_future.exception()}")
            with self._counters.cond:
                stats.recording_done = True
                self._counters.cond.notify_all()

        future.add_done_callback(mark_done)

    def _record_failed(self, state: StreamState, exc: OSError) -> None:
        """Writer thread: a chunk could not be written; the stream fails, its owner is told."""
        message = f"recording {state.stats.recording} failed: {exc}"
        self._counters.count_error(state.header.stream, "record_failed", message)
        self._replies.fail(state, "record_failed", message)

    def _count_recorded(self, state: StreamState, n: int, seq: int) -> None:
        with self._counters.cond:
            state.stats.frames_recorded += n
            self._counters.cond.notify_all()
        self._replies.done(state, seq)
