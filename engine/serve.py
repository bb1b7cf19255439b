"""``serve``: ingest items in, one :class:`~engine.analyzer.StreamAnalyzer` per stream, sinks out.

The :class:`Server` consumes the ingest's bounded queue on one dispatcher thread (policy
``block``: when analysis falls behind it lags and catches up; the raw recorder has already
written every chunk) and runs each stream's work -- its chunks' analysis, finish, statistics
samples -- on a post-processing pool of ``workers`` threads (:mod:`engine.serve_pool`): one
stream on one worker at a time, in order, so independent streams are analysed in parallel
and each stream's events reach the sinks in order. ``workers=1`` runs everything on the
dispatcher thread, as a single analysis thread. The pool bounds the work in flight per stream
and in all; beyond it the dispatcher stops taking items and the ingest queue fills (the
back-pressure of a single thread). The sinks, the structure registry and inference are shared
behind locks (:mod:`engine.serve_shared`: which, and why inference and cross-stream batching
stay serialized while the rest runs in parallel).

Per stream the server writes events as they close, the running cell summary when it changes,
a statistics sample every ``stats_interval_s`` (rates, lag in frames and in seconds, look-ahead,
compute delay p50/p99, gaps, errors, queue depth: :mod:`engine.serve_stream`) and a small
ΔF/F0 preview for the dashboard (display sink only; never slows analysis by more than a
downsample).

Streams are isolated: an exception while analysing one stream (a bug, memory, a store that
cannot be written) marks that stream *failed* with a one-line reason (log, :attr:`Server.failed`,
a last statistics sample with ``failed``, :attr:`Server.n_failed`, the store's stream row
closed) and the loop goes on with the others; the ingest keeps recording it.
Frames larger than ``MAX_ANALYSIS_PIXELS`` are recorded but not analysed. A stream the ingest
closed after its idle timeout (publisher gone without a stop) is finished like a stopped one,
its last statistics sample carrying ``abandoned: true``. NaN/Inf values
(counted by the ingest) are replaced by the chunk's finite median for analysis only.

Memory is bounded for runs of days (the store is the record): per live stream an
:class:`~engine.event_window.EventWindow` (recent events, counts by kind, so the statistics
are incremental) and the analyzer's own bounded buffers; of finished streams only the last
:data:`~engine.serve_outcomes.FINISHED_KEPT` summaries (:mod:`engine.serve_outcomes`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

import numpy as np

from acquisition.ingest import ChunkReceived, Ingest, StreamStarted, StreamStopped
from acquisition.wire import StartHeader

from .cells_live import StructureStreams, field_of
from .coalesce import coalesce
from .event_window import RECENT_EVENTS, EventWindow
from .events import Event
from .pipeline import DetectorFactory
from .serve_outcomes import FINISHED_KEPT, StreamOutcomes, report_failure
from .serve_pool import make_pool
from .serve_shared import InferenceGuard, Locked
from .serve_stream import LiveStream, finite_for_analysis, stream_info_from_header, stream_row
from .sinks import SinkSet
from .stream_summary import summarize_stream

log = logging.getLogger(__name__)

MAX_ANALYSIS_PIXELS = 1 << 20  # per frame/line; larger streams are recorded, not analysed
BACKPRESSURE_POLL_S = 0.05  # while waiting for room in the pool: batches and statistics
STRUCTURE_LANE = "\x00structure"  # the pool lane of every image stream (never a stream name)


class Server:
    """Runs the analysis loop over an :class:`~acquisition.ingest.Ingest`.

    Parameters
    ----------
    ingest : Ingest
    factory : DetectorFactory
    sinks : SinkSet
        Store and display sinks (events, stats, cell summaries).
    publisher : EventPublisher, optional
        Also receives previews (``publish_preview``).
    stats_interval_s, preview_interval_s : float
    cells_model : Path, optional
        Cells model directory for structure images (:mod:`engine.cells_live`; default: the
        packaged one).
    workers : int
        Post-processing threads (:mod:`engine.serve_pool`); 1: all on the dispatcher thread,
        and :meth:`handle` returns once the item is analysed.
    processes : AnalysisProcesses, optional
        The streams' analyzers live in these processes (:mod:`engine.serve_remote`; ``serve
        --processes N``) instead of this one; the workers then drive them, and there is no
        cross-stream batching. The caller owns (and closes) them.

    Class attributes ``recent_events`` (events kept per live stream) and ``finished_kept``
    (finished streams kept) bound the memory; see the module docstring.

    With cross-stream batching (``factory.batcher`` set, :mod:`engine.batching`), each loop
    iteration waits for the ingest at most until the next partial batch is due, runs due
    batches (:meth:`poll_batches`) and post-processes the blocks they finalized, per stream
    (on the stream's worker).
    """

    recent_events: int = RECENT_EVENTS
    finished_kept: int = FINISHED_KEPT

    def __init__(self, ingest: Ingest, factory: DetectorFactory, sinks: SinkSet,
                 publisher=None, stats_interval_s: float = 1.0,
                 preview_interval_s: float = 0.25, cells_model=None, workers: int = 1,
                 processes=None) -> None:
        self.ingest = ingest
        self.factory = factory
        self.processes = processes
        self.batcher = factory.batcher if processes is None else None
        # shared by the workers: one lock for the sinks and the publisher (a sink too)
        self.sinks = Locked(sinks)
        self.publisher = Locked(publisher, self.sinks.lock) if publisher is not None else None
        self.pool = make_pool(workers)
        self.inference = InferenceGuard(self.batcher)
        self._factory_lock = threading.Lock()
        self.stats_interval_s = stats_interval_s
        self.preview_interval_s = preview_interval_s
        self.live: dict[str, LiveStream] = {}
        #: image streams (structure images) and the attribution of events to their cells
        self.structure = Locked(StructureStreams(self.sinks, cells_model))
        self._image_streams: set[str] = set()  # dispatcher side: live image streams
        #: streams finished (the newest ``finished_kept`` summaries) or failed
        self.outcomes = StreamOutcomes()
        self.finished, self.failed = self.outcomes.finished, self.outcomes.failed
        self._deferred: Exception | None = None  # an ingest error met while joining chunks
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Run the work already queued, then finish every live stream (flush its analysis to
        the sinks; in parallel with workers) and stop the workers; one failing stream does
        not keep the others from finishing."""
        self.pool.join()
        for stream in list(self.live):
            self.pool.submit(stream, self._guarded, stream, self._finish, stream, bounded=False)
        self.pool.join()
        self.pool.close()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every item handed over so far has been analysed (False on timeout)."""
        return self.pool.join(timeout_s)

    def run(self, max_streams: int | None = None) -> None:
        """Process items until :meth:`stop` (or ``max_streams`` streams have finished).

        An exception (e.g. a store that cannot be written) ends the loop; it is kept in
        :attr:`error` for :meth:`wait_finished` and re-raised.
        """
        try:
            self._loop(max_streams)
        except Exception as exc:
            self.outcomes.loop_failed(exc)
            raise

    @property
    def error(self) -> Exception | None:
        """The exception that ended :meth:`run`, if any."""
        return self.outcomes.error

    def _loop(self, max_streams: int | None) -> None:
        pending = None  # an item taken from the queue while joining chunks, not yet handled
        while not self._stop.is_set():
            item, pending = pending, None
            if item is None:
                item = self.ingest.get(timeout_s=self._wait_s())
            if isinstance(item, ChunkReceived):
                item, pending = coalesce(item, self._queued)
            if item is not None:
                self.handle(item)
            if self._deferred is not None:
                error, self._deferred = self._deferred, None
                raise error
            self.poll_batches()
            self._periodic()
            if max_streams is not None and self.n_done >= max_streams:
                break

    def _queued(self):
        """The next item already in the ingest queue, without waiting (None when empty); an
        error of the ingest (queue overflow) is raised after the chunks taken so far."""
        try:
            return self.ingest.get(timeout_s=0)
        except Exception as exc:  # noqa: BLE001 -- re-raised by _loop once the join is handled
            self._deferred = exc
            return None

    @property
    def n_done(self) -> int:
        """Streams finished or failed (distinct names)."""
        return self.outcomes.n_done

    @property
    def n_failed(self) -> int:
        """Streams whose analysis failed (and that did not restart since)."""
        return self.outcomes.n_failed

    def wait_finished(self, n_streams: int, timeout_s: float) -> bool:
        """Block until ``n_streams`` streams have finished or failed (for the demo and tests).

        Raises ``RuntimeError`` if the analysis loop failed meanwhile.
        """
        return self.outcomes.wait(n_streams, timeout_s)

    def poll_batches(self, now: float | None = None) -> None:
        """Run the batches that are due and emit the events of the blocks they finalized (a
        collect per stream, on its worker)."""
        if self.batcher is None:
            return
        self.inference.poll(now)
        for stream, live in list(self.live.items()):
            if not live.collect_queued and live.analyzer.has_ready:
                live.collect_queued = True
                self.pool.submit(stream, self._collect, stream, live, bounded=False)

    def _collect(self, stream: str, live: LiveStream) -> None:
        live.collect_queued = False
        if self.live.get(stream) is live:
            self._guarded(stream, lambda: self._emit(stream, live, live.analyzer.collect()))

    def _wait_s(self) -> float:
        """Ingest wait: 0.1 s, or less when a partial batch is due sooner."""
        due = self.inference.seconds_to_deadline()
        return 0.1 if due is None else min(0.1, due)

    def handle(self, item) -> None:
        """One ingest item, isolated: a failure marks only its stream failed. With workers it
        is queued behind its stream's earlier items (:meth:`drain` waits for it); while the
        stream or the pool is full, due batches and statistics are still served."""
        lane = self._lane(item)
        while not self.pool.submit(lane, self._handle_now, item,
                                   timeout_s=BACKPRESSURE_POLL_S):
            self.poll_batches()
            self._periodic()

    def _lane(self, item) -> str:
        """The pool lane of ``item``: its stream's, but one shared lane, in arrival order, for
        every image stream (a field's labels image must be known before its structure image is
        analysed, whichever streams they come on). Decided here on the dispatcher, from the
        ``start`` headers it has seen, not from state the workers have yet to build."""
        stream = item.header.stream
        if isinstance(item, StreamStarted):
            if item.header.stream_kind.is_image:
                self._image_streams.add(stream)
            else:
                self._image_streams.discard(stream)
        lane = STRUCTURE_LANE if stream in self._image_streams else stream
        if isinstance(item, StreamStopped):
            self._image_streams.discard(stream)
        return lane

    def _handle_now(self, item) -> None:
        stream = item.header.stream
        if self.structure.claims(item):
            if isinstance(item, StreamStarted):
                self.outcomes.restarted(stream)
            self._guarded(stream, self._structure_item, item)
        elif isinstance(item, StreamStarted):
            self.outcomes.restarted(stream)
            self._guarded(stream, self._start, item.header)
        elif stream in self.failed:
            if isinstance(item, StreamStopped):
                log.warning("stream %s stopped; its analysis had failed (%s), its recording is "
                            "complete", stream, self.failed[stream])
        elif isinstance(item, ChunkReceived):
            self._guarded(stream, self._chunk, item)
        elif isinstance(item, StreamStopped):
            self._guarded(stream, self._finish, stream, getattr(item.stats, "abandoned", False))

    def _structure_item(self, item) -> None:
        """An item of an image stream (:mod:`engine.cells_live`)."""
        if self.structure.handle(item):
            self.outcomes.done(item.header.stream)

    def _guarded(self, stream: str, step, *args) -> None:
        try:
            step(*args)
        except Exception as exc:  # noqa: BLE001 - one stream must not stop serve
            self._fail(stream, exc)

    def _fail(self, stream: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:300]
        live = self.live.pop(stream, None)
        self.outcomes.failed_stream(stream, reason)
        self.structure.forget(stream)
        log.error("stream %s: analysis stopped (%s); the stream is still recorded, other "
                  "streams go on", stream, reason)
        log.debug("stream %s failure", stream, exc_info=exc)
        if live is not None:
            live.analyzer.close()
            report_failure(self.sinks, stream, reason, live.events.n_events)
        self.outcomes.notify()

    # -- per item --------------------------------------------------------------------------
    def _start(self, header: StartHeader) -> None:
        if header.stream in self.live:
            log.warning("stream %s restarted; finishing the previous run", header.stream)
            self._finish(header.stream)
        info = stream_info_from_header(header)
        pixels = int(np.prod(info.frame_shape))
        if pixels > MAX_ANALYSIS_PIXELS:
            raise ValueError(f"frames of {list(info.frame_shape)} = {pixels} pixels are larger "
                             f"than analysis supports ({MAX_ANALYSIS_PIXELS})")
        if self.processes is not None:
            analyzer = self.processes.start(info)
            described = analyzer.described
        else:
            with self._factory_lock:  # a model that failed at start-up is loaded once
                analyzer = self.factory.analyzer(info)
                described = self.factory.describe(info)
            if self.pool.workers > 1:
                self.inference.guard(analyzer)
        try:
            recording = getattr(self.ingest.stats().get(header.stream), "recording", None)
            self.sinks.open_stream({**stream_row(analyzer, recording, field_of(header)),
                                    **described})
            self.live[header.stream] = LiveStream(analyzer, time.time(),
                                                  EventWindow(self.recent_events))
            self.structure.ca_started(header, analyzer)
        except BaseException:
            if header.stream not in self.live:  # (_fail closes a live stream's analyzer)
                analyzer.close()
            raise
        log.info("stream %s started: %s %s, look-ahead %.0f ms, %s", info.stream,
                 info.stream_kind.value,
                 info.frame_shape, analyzer.lookahead_ms, analyzer.detector.name)

    def _chunk(self, item: ChunkReceived) -> None:
        live = self.live.get(item.header.stream)
        if live is None:
            log.warning("chunk for stream %s that is not running here", item.header.stream)
            return
        if self.pool.workers > 1:  # join the stream's chunks queued behind this one
            item, rest = coalesce(item, lambda: self._queued_chunk(item.header.stream))
            if rest is not None:
                self.pool.put_back(item.header.stream, self._handle_now, rest)
        header, t_arrival = item.header, item.t_received
        waited_s = time.perf_counter() - t_arrival if t_arrival is not None else 0.0
        live.lag.add_chunk(header.first, header.n, header.t_ns / 1e9, time.time() - waited_s)
        live.queue_wait_s = max(live.queue_wait_s, waited_s)
        events = live.analyzer.push(header.first, finite_for_analysis(item.data), t_arrival)
        self._emit(header.stream, live, events)
        self._maybe_preview(header.stream, live)

    def _queued_chunk(self, stream: str) -> ChunkReceived | None:
        """The stream's next item queued in the pool when it is a chunk (taken), else None."""
        args = self.pool.take_next(stream, lambda fn, args: fn == self._handle_now
                                   and isinstance(args[0], ChunkReceived))
        return None if args is None else args[0]

    def _finish(self, stream: str, abandoned: bool = False) -> None:
        """Flush a stream's analysis to the sinks; ``abandoned``: the ingest closed it after
        its idle timeout (its publisher sent no stop), recorded in the last stats sample."""
        live = self.live.get(stream)
        if live is None:
            return
        if live.analyzer.stats.frames_in:  # a stream without any frame has nothing to flush
            self._emit(stream, live, live.analyzer.finish())
        live.analyzer.close()
        del self.live[stream]
        extra = self.structure.ca_finished(stream, live.analyzer)
        self._write_stats(stream, live, time.time(), **extra,
                          **({"abandoned": True} if abandoned else {}))
        self.sinks.close_stream(stream)
        window = live.events
        self.outcomes.finished_stream(stream, {
            "events": list(window.recent), "n_events": window.n_events,
            "summary": summarize_stream(live.analyzer, window.recent, window.counts),
            "abandoned": abandoned,
        }, keep=self.finished_kept)
        log.log(logging.WARNING if abandoned else logging.INFO, "stream %s finished%s: %d events",
                stream, " (abandoned by its publisher)" if abandoned else "", window.n_events)
        del live, window
        gc.collect()  # a finished analyzer holds large arrays in reference cycles

    def _emit(self, stream: str, live: LiveStream, events: list[Event]) -> None:
        if not events:
            return
        self.structure.attribute(stream, events)
        live.events.add(events)
        self.sinks.write_events(stream, events)
        summary = live.analyzer.cell_summary
        if summary is not None and summary.n_sparks != live.cell_n_sparks:
            live.cell_n_sparks = summary.n_sparks
            self.sinks.write_cell(stream, {"cell": live.analyzer.info.cell, **summary.to_dict()})

    # -- periodic ----------------------------------------------------------------------------
    def _periodic(self) -> None:
        """A statistics sample for each stream that is due one (on its worker)."""
        now = time.time()
        for stream, live in list(self.live.items()):
            if not live.stats_queued and now - live.last_stats_s >= self.stats_interval_s:
                live.stats_queued = True
                self.pool.submit(stream, self._stats_sample, stream, live, bounded=False)

    def _stats_sample(self, stream: str, live: LiveStream) -> None:
        live.stats_queued = False
        if self.live.get(stream) is live:  # not finished or failed meanwhile
            self._guarded(stream, self._write_stats, stream, live, time.time())

    def _write_stats(self, stream: str, live: LiveStream, now: float, **extra) -> None:
        live.write_stats(self.sinks, stream, self.ingest.stats().get(stream),
                         self.ingest.queue_depth(), now, **extra)

    def _maybe_preview(self, stream: str, live: LiveStream) -> None:
        now = time.time()
        if self.publisher is not None and now - live.last_preview_s >= self.preview_interval_s:
            preview = live.preview()  # (first, image, lo, hi, step), or None before any frame
            if preview is not None:
                self.publisher.publish_preview(stream, *preview)
                live.last_preview_s = now
