"""Start and stop a complete engine (ingest + analysis threads + sinks) in one place.

Used by ``castream serve`` (in the foreground) and by ``castream demo`` and the tests (in a
background thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from acquisition.ingest import Ingest
from acquisition.ingest_idle import DEFAULT_STREAM_IDLE_TIMEOUT_S

from .pipeline import DetectorFactory, EngineConfig
from .serve import Server
from .serve_pool import default_workers
from .serve_remote import AnalysisProcesses
from .sinks import SinkSet
from .sinks.publish import EventPublisher
from .sinks.store import SqliteStore

log = logging.getLogger(__name__)


@contextmanager
def running_server(endpoint: str, store: Path | None, record_dir: Path | None,
                   config: EngineConfig, publish: str | None = None,
                   queue_size: int = 1024,
                   stream_idle_timeout_s: float | None = DEFAULT_STREAM_IDLE_TIMEOUT_S,
                   curve_dir: Path | str | None = None,
                   cells_model: Path | str | None = None,
                   workers: int | None = None, processes: int = 0) -> Iterator[Server]:
    """Build a :class:`~engine.serve.Server`; everything is closed (live streams finished) on
    exit. ``stream_idle_timeout_s``: see :mod:`acquisition.ingest_idle` (``None``: never).
    ``curve_dir``: ingest and event PUB are CURVE servers (:mod:`acquisition.curve`).
    ``cells_model``: the cells model directory for structure images (default: packaged).
    ``workers``: post-processing threads (:mod:`engine.serve_pool`; default: the cores
    available, at most 4). ``processes``: the streams' analyzers run in that many processes
    (:mod:`engine.serve_remote`; 0: in this one), driven by at least twice as many workers.

    Models and backends are loaded before the ingest listens (in each analysis process, with
    ``processes``), so a stream's first chunk is analysed without loading delay.
    """
    factory = DetectorFactory(config)
    remote = None
    t0 = time.perf_counter()
    try:
        if processes:
            remote = AnalysisProcesses(config, processes, factory.classifier)
        else:
            kinds = factory.load_models()
            log.info("models loaded at start-up in %.1f s: %s", time.perf_counter() - t0,
                     ", ".join(kind.value for kind in kinds) or "none (classical detector)")
    except BaseException:
        factory.close()
        raise
    try:
        server = _server(factory, remote, endpoint, store, record_dir, publish, queue_size,
                         stream_idle_timeout_s, curve_dir, cells_model, workers)
    except BaseException:
        if remote is not None:
            remote.close()
        factory.close()
        raise
    try:
        yield server
    finally:  # each step runs even when an earlier one fails (recordings are finalized)
        try:
            server.close()
        finally:
            try:
                server.ingest.close()
            finally:
                try:
                    server.sinks.close()
                finally:
                    try:
                        if remote is not None:
                            remote.close()
                    finally:
                        factory.close()


def _server(factory, remote, endpoint, store, record_dir, publish, queue_size,
            stream_idle_timeout_s, curve_dir, cells_model, workers) -> Server:
    """The server of :func:`running_server`, its sinks and its ingest (bound now)."""
    sinks: list = []
    publisher = None
    if store is not None:
        Path(store).parent.mkdir(parents=True, exist_ok=True)
        sinks.append(SqliteStore(store))
    if publish:
        publisher = EventPublisher(publish, curve_dir=curve_dir)
        sinks.append(publisher)
    if record_dir is not None:
        Path(record_dir).mkdir(parents=True, exist_ok=True)
    ingest = Ingest(endpoint, record_dir=record_dir, queue_size=queue_size, policy="block",
                    stream_idle_timeout_s=stream_idle_timeout_s, curve_dir=curve_dir)
    workers = default_workers() if workers is None else workers
    if remote is not None:  # a worker waits while its stream's process serves another stream
        workers = max(workers, 2 * remote.n)
    server = Server(ingest, factory, SinkSet(sinks), publisher, cells_model=cells_model,
                    workers=workers, processes=remote)
    log.info("post-processing on %d worker%s%s", workers, "s" if workers > 1 else "",
             f", analyzers in {remote.n} processes" if remote is not None else "")
    return server


@contextmanager
def background_server(**kwargs) -> Iterator[Server]:
    """:func:`running_server` with its loop on a background thread (demo, tests)."""
    with running_server(**kwargs) as server:
        thread = threading.Thread(target=server.run, name="castream-analysis", daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.stop()
            thread.join(timeout=30)
            if thread.is_alive():
                log.error("analysis thread did not stop within 30 s")
