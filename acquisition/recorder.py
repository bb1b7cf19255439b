"""Raw recording of every received chunk, before anything downstream can drop it.

Each stream gets a base name ``<dir>/<name>`` (the stream id sanitized for file names,
made unique) and, while it runs:

* ``<name>.start.json`` -- the start header (written at start; the stop, when it comes);
* ``<name>.raw`` -- lines/frames as raw C-order bytes, each chunk written at
  ``first * item_bytes`` with ``os.pwrite`` (never-received items stay zero);
* ``<name>.idx`` -- one ``(first, n)`` int64 pair per written chunk.

Writes run on a dedicated writer thread, in arrival order, so that the receive thread goes on
decoding the next message while the kernel copies this one (``pwrite`` releases the GIL); the
queue between them is bounded (``max_pending_bytes``: when the disk is slower, the receiver
waits), and ``on_written`` callbacks report each chunk once it is durable: every
``sync_every_bytes``, or at the latest ``sync_after_s`` after its oldest write, the writer
hands what it wrote to a syncer thread, which syncs those files with ``fdatasync`` (group commit,
pipelined with the next writes) before it reports them and before it runs anything queued
after them with :meth:`RawRecorder.after_writes` -- an acknowledged chunk survives
``kill -9`` and a power loss.

At stop (or :meth:`RawRecorder.close`) a background thread converts them into
``<name>.tif`` (ImageJ TIFF with calibration, written through a memmap in blocks, never
loading the recording) and ``<name>.json`` (counts and the list of gap ranges), then
deletes the raw files. A crash leaves ``.raw`` + ``.start.json`` + ``.idx`` behind;
:func:`acquisition.raw_files.recover` converts them later.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acquisition.raw_files import (
    INDEX_RECORD,
    RecordingSummary,
    convert_raw,
    exists_any,
    header_fields,
    path_with,
    remove_raw_files,
    sidecar_path,
    write_json,
)
from acquisition.wire import StartHeader

log = logging.getLogger(__name__)

_MAX_NAME_CHARS = 100


def sanitize_stream_id(stream: str) -> str:
    """File-name-safe version of a stream id (letters, digits, ``._-`` only)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stream).strip("._")
    return name[:_MAX_NAME_CHARS] or "stream"


@dataclass
class _OpenRecording:
    header: StartHeader
    base: Path
    raw_fd: int
    idx_fd: int
    error: OSError | None = None  # set by the writer thread; raised by the next write


DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
DEFAULT_SYNC_EVERY_BYTES = 32 * 1024 * 1024
# at most this long between a write and its sync: bounds the acknowledgement delay while
# keeping fdatasync calls to a few tens per second (a sync costs milliseconds on a VM disk,
# and syncing whenever the writer catches up -- after every chunk or two -- made recording
# the bottleneck of the acknowledged wire)
DEFAULT_SYNC_AFTER_S = 0.02
_STOP = object()  # handed to the syncer thread after the last batch


class RawRecorder:
    """Record streams to ``directory``; one recording per started stream.

    Call :meth:`open_stream`, :meth:`write` and :meth:`finish` from one thread (the ingest's
    receive thread); the writes themselves happen on the recorder's writer thread, in order.
    """

    def __init__(self, directory: str | os.PathLike,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES, durable: bool = True,
                 sync_every_bytes: int = DEFAULT_SYNC_EVERY_BYTES,
                 sync_after_s: float = DEFAULT_SYNC_AFTER_S):
        self.durable = durable
        self.sync_every_bytes = int(sync_every_bytes)
        self.sync_after_s = float(sync_after_s)
        self._sync_due = 0.0  # monotonic time by which the oldest unsynced write is synced
        self._unsynced: list[tuple[_OpenRecording, Any, Any]] = []  # written, not yet synced
        self._unsynced_bytes = 0
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, _OpenRecording] = {}
        self._names_in_use: set[str] = set()
        self._converter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="castream-rec")
        self._lock = threading.Lock()
        self._capacity = max(1, max_pending_bytes // 65536)
        self._pending_bytes = threading.Semaphore(self._capacity)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._sync_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="castream-rec-writer",
                                        daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name="castream-rec-sync",
                                        daemon=True)
        self._writer.start()
        self._syncer.start()

    def open_stream(self, header: StartHeader) -> Path:
        """Create the raw files for a started stream; returns the base path (no suffix)."""
        if header.stream in self._open:
            raise ValueError(f"stream {header.stream!r} is already being recorded")
        base = self._unique_base(sanitize_stream_id(header.stream))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fds: list[int] = []
        try:
            write_json(sidecar_path(base), {"start": header_fields(header), "stop": None})
            fds.append(os.open(path_with(base, ".raw"), flags, 0o644))
            fds.append(os.open(path_with(base, ".idx"), flags | os.O_APPEND, 0o644))
        except OSError:
            for fd in fds:
                os.close(fd)
            remove_raw_files(base)
            with self._lock:
                self._names_in_use.discard(base.name)
            raise
        self._open[header.stream] = _OpenRecording(header, base, *fds)
        log.info("recording stream %r to %s.raw", header.stream, base)
        return base

    def write(self, stream: str, first: int, n: int, payload: Any,
              on_written: Callable[[], None] | None = None,
              on_failed: Callable[[OSError], None] | None = None) -> None:
        """Queue ``n`` items starting at index ``first`` (payload: bytes-like, C order, kept
        alive until written); ``on_written`` runs on the syncer thread once they are in the
        file, ``on_failed(error)`` instead when they could not be written. Raises the
        ``OSError`` of an earlier failed write of this stream."""
        rec = self._open[stream]
        if rec.error is not None:
            raise rec.error
        view = memoryview(payload).cast("B")
        # a chunk larger than the whole budget takes all of it (asking for more would block
        # forever); it then waits until every earlier write is done
        tokens = min(self._capacity, max(1, view.nbytes // 65536))
        for _ in range(tokens):
            self._pending_bytes.acquire()
        self._queue.put((rec, first, n, view, tokens, on_written, on_failed))

    def after_writes(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the syncer thread once every write queued so far is done."""
        self._queue.put(callback)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every write queued so far is in its file; False on timeout."""
        written = threading.Event()
        self._queue.put(written.set)
        return written.wait(timeout_s)

    def _write_loop(self) -> None:
        while True:
            if self._unsynced and (self._unsynced_bytes >= self.sync_every_bytes
                                   or time.monotonic() >= self._sync_due):
                self._hand_over()
            try:  # an idle writer hands over what it holds once the oldest write is due
                timeout = max(0.0, self._sync_due - time.monotonic()) if self._unsynced else None
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            if item is None:
                self._hand_over(_STOP)
                return
            if callable(item):
                self._hand_over(item)  # it runs once the writes before it are durable
                continue
            self._write_one(*item)

    def _hand_over(self, then: Any = None) -> None:
        """Pass the writes done since the last hand-over (and ``then``, a callback or
        :data:`_STOP`) to the syncer thread; the writer goes on writing meanwhile."""
        batch, self._unsynced, self._unsynced_bytes = self._unsynced, [], 0
        if batch or then is not None:
            self._sync_queue.put((batch, then))

    def _write_one(self, rec: _OpenRecording, first: int, n: int, view: memoryview, tokens: int,
                   on_written: Callable[[], None] | None,
                   on_failed: Callable[[OSError], None] | None) -> None:
        try:
            if rec.error is None:
                _pwrite_all(rec.raw_fd, view, first * rec.header.item_bytes)
                os.write(rec.idx_fd, INDEX_RECORD.pack(first, n))
        except OSError as exc:
            log.error("recording of stream %r failed: %s", rec.header.stream, exc)
            rec.error = exc
        finally:
            self._pending_bytes.release(tokens)
        if rec.error is None:
            if not self._unsynced:
                self._sync_due = time.monotonic() + self.sync_after_s
            self._unsynced.append((rec, on_written, on_failed))
            self._unsynced_bytes += view.nbytes
        elif on_failed is not None:
            _run_safely(lambda: on_failed(rec.error))

    def _sync_loop(self) -> None:
        """Group commit on its own thread, pipelined with the writes: ``fdatasync`` every file
        of the batches handed over so far, then report their chunks as written (and run the
        callbacks queued after them, in order) -- an acknowledged chunk survives a power
        loss. Batches that queued up while a sync ran share the next one."""
        while True:
            handed = [self._sync_queue.get()]
            while True:
                try:
                    handed.append(self._sync_queue.get_nowait())
                except queue.Empty:
                    break
            if self.durable:
                self._sync_files(rec for batch, _ in handed for rec, _, _ in batch)
            for batch, then in handed:
                for rec, on_written, on_failed in batch:
                    if rec.error is None:
                        if on_written is not None:
                            _run_safely(on_written)
                    elif on_failed is not None:
                        _run_safely(lambda rec=rec, on_failed=on_failed: on_failed(rec.error))
                if then is _STOP:
                    return
                if then is not None:
                    _run_safely(then)

    @staticmethod
    def _sync_files(recs: Iterable[_OpenRecording]) -> None:
        for rec in {id(rec): rec for rec in recs}.values():
            if rec.error is None:
                try:
                    os.fdatasync(rec.raw_fd)
                    os.fdatasync(rec.idx_fd)
                except OSError as exc:
                    log.error("recording of stream %r failed: %s", rec.header.stream, exc)
                    rec.error = exc

    def is_recording(self, stream: str) -> bool:
        return stream in self._open

    def finish(
        self, stream: str, n_total: int | None = None, stopped: bool = True,
        on_closed: Callable[[OSError | None], None] | None = None,
    ) -> Future[RecordingSummary]:
        """After the stream's queued writes: sync and close its raw files (``on_closed(error)``
        then runs on the syncer thread) and convert them to TIFF + JSON in the background."""
        rec = self._open.pop(stream)
        done: Future[RecordingSummary] = Future()

        def close_and_convert() -> None:
            error = _close_recording(rec, n_total, stopped)
            if on_closed is not None:
                _run_safely(lambda: on_closed(error))
            if error is not None:
                done.set_exception(error)
                return
            conversion = self._converter.submit(convert_raw, rec.base)
            conversion.add_done_callback(lambda f: _chain(f, done))

        self._queue.put(close_and_convert)
        return done

    def close(self, timeout_s: float | None = None) -> list[RecordingSummary]:
        """Finish every open stream (as not stopped) and wait for all conversions."""
        futures = [self.finish(stream, stopped=False) for stream in list(self._open)]
        summaries = [future.result(timeout=timeout_s) for future in futures]
        self._queue.put(None)
        self._writer.join(timeout=timeout_s)
        self._syncer.join(timeout=timeout_s)
        self._converter.shutdown(wait=True)
        return summaries

    def _unique_base(self, name: str) -> Path:
        with self._lock:
            candidate, counter = name, 0
            while candidate in self._names_in_use or exists_any(self.directory / candidate):
                counter += 1
                candidate = f"{name}-{counter}"
            self._names_in_use.add(candidate)
            return self.directory / candidate


def _close_recording(rec: _OpenRecording, n_total: int | None, stopped: bool) -> OSError | None:
    """fsync and close the raw files, write the stop into the sidecar; the first error."""
    error = rec.error
    for fd in (rec.raw_fd, rec.idx_fd):
        try:
            os.fsync(fd)
        except OSError as exc:
            error = error or exc
        finally:
            os.close(fd)
    try:
        write_json(sidecar_path(rec.base), {"start": header_fields(rec.header),
                                            "stop": {"n_total": n_total, "stopped": stopped}})
    except OSError as exc:
        error = error or exc
    if error is not None:
        log.error("recording %s.raw is incomplete: %s (its recorded chunks stay on disk; "
                  "`castream recover %s` converts them)", rec.base, error, rec.base.parent)
    return error


def _run_safely(callback: Callable[[], Any]) -> None:
    """Run a callback on the syncer thread; an error in it must not end the thread."""
    try:
        callback()
    except Exception:
        log.exception("recorder callback failed")


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view.nbytes:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _chain(source: Future, target: Future) -> None:
    if source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())
