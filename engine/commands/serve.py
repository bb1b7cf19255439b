"""``castream serve``: receive live streams, analyze them, store and publish the events."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path

from acquisition.ingest_idle import DEFAULT_STREAM_IDLE_TIMEOUT_S

from ._curve_args import add_curve_server_arguments
from ._engine_args import add_engine_arguments, engine_config

HELP = "receive streams over ZeroMQ, record them, detect and characterize Ca2+ events live"

log = logging.getLogger("castream.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555",
                        help="ingest address to bind (ROUTER, wire v2; default: %(default)s)")
    parser.add_argument("--publish", default="tcp://127.0.0.1:5556",
                        help="event PUB address to bind, or 'none' (default: %(default)s)")
    parser.add_argument("--store", type=Path, default=Path("castream-data/castream.sqlite"),
                        help="SQLite event store (default: %(default)s)")
    parser.add_argument("--record-dir", type=Path, default=Path("castream-data/raw"),
                        help="raw recordings, one TIFF per stream (default: %(default)s)")
    parser.add_argument("--queue-size", type=int, default=1024,
                        help="ingest → analysis queue bound, in chunks (policy: block)")
    parser.add_argument("--stream-idle-timeout-s", type=float,
                        default=DEFAULT_STREAM_IDLE_TIMEOUT_S,
                        help="close a stream whose publisher sent nothing for this long "
                             "(killed without a stop) and mark it abandoned; its recording is "
                             "finalized with everything received; 0 = never (default: "
                             "%(default)s)")
    parser.add_argument("--max-streams", type=int,
                        help="exit after this many streams have finished")
    parser.add_argument("--insecure", action="store_true",
                        help="allow binding addresses reachable from other machines (there is "
                        "no authentication: anyone reaching them can send or read streams)")
    parser.add_argument("--workers", type=int,
                        help="post-processing threads: streams analysed in parallel, each "
                             "stream on one at a time, in order; 1 = one analysis thread "
                             "(default: the cores available, at most 4: more threads measured no "
                             "faster)")
    add_processes_argument(parser)
    parser.add_argument("--cells-model", type=Path,
                        help="cells model directory for structure images sent as image "
                             "streams (default: the packaged one)")
    add_curve_server_arguments(parser)
    add_engine_arguments(parser)


def add_processes_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=None,
                        help="analyse the streams in this many processes (each stream stays "
                             "in one), so that the analysis uses every core, which threads "
                             "cannot (measured: README, 'Many streams into one serve'); 0 = "
                             "in the serve process, faster for a single stream (default: one "
                             "per core on a CPU with 2 or more cores; 0 with a GPU, which "
                             "batches windows across streams, or with --workers 1)")


def processes_for(args: argparse.Namespace, config) -> int:
    """``--processes``, or its default for this engine configuration."""
    from engine.serve_remote import default_processes

    if args.processes is not None:
        if args.processes < 0:
            raise SystemExit(f"castream: error: --processes must be >= 0, got {args.processes}")
        return args.processes
    return default_processes(config, getattr(args, "workers", None))


def run(args: argparse.Namespace) -> int:
    import zmq

    from engine.commands._exposure import check_exposure
    from engine.runtime import running_server
    from engine.serve_remote import AnalysisStartError

    check_exposure({"--endpoint": args.endpoint, "--publish": args.publish}, args.insecure,
                   authenticated=bool(args.curve_dir))
    _warn_unfinished(args.record_dir)
    config = engine_config(args)
    try:
        with running_server(
            endpoint=args.endpoint, publish=None if args.publish == "none" else args.publish,
            store=args.store, record_dir=args.record_dir, config=config,
            queue_size=args.queue_size, stream_idle_timeout_s=args.stream_idle_timeout_s or None,
            curve_dir=args.curve_dir, cells_model=args.cells_model, workers=args.workers,
            processes=processes_for(args, config),
        ) as server:
            log.info("serving: ingest %s, events %s, store %s, raw recordings in %s",
                     server.ingest.endpoint, args.publish, args.store, args.record_dir)
            with _graceful_signals(server):
                server.run(max_streams=args.max_streams)
            log.info("stopping: finishing live streams and their recordings")
    except AnalysisStartError as exc:
        log.error("%s; serve did not start (--processes 0 analyses in the serve process)", exc)
        return 1
    except zmq.ZMQError as exc:
        log.error("cannot listen on --endpoint %s / --publish %s: %s (another castream serve "
                  "running? choose free addresses)", args.endpoint, args.publish, exc)
        return 1
    sys.stdout.write(server_report(server))
    for stream in (s for s, done in server.finished.items() if done.get("abandoned")):
        sys.stdout.write(f"stream {stream}: abandoned by its publisher (no stop; closed after "
                         f"{args.stream_idle_timeout_s:g} s without a message)\n")
    for stream, reason in server.failed.items():
        sys.stdout.write(f"stream {stream}: analysis failed ({reason}); its recording is "
                         "complete\n")
    for code, count in sorted(server.structure.errors_by_code.items()):
        sys.stdout.write(f"structure images refused or without cells [{code}]: {count}\n")
    return 0


def _warn_unfinished(record_dir: Path) -> None:
    from acquisition.raw_files import unfinished_recordings

    if record_dir is not None and record_dir.is_dir() and unfinished_recordings(record_dir):
        log.warning("%d recording(s) in %s were left unfinished by an earlier crash; run "
                    "`castream recover %s` (with serve stopped) to convert them",
                    len(unfinished_recordings(record_dir)), record_dir, record_dir)


@contextlib.contextmanager
def _graceful_signals(server):
    """SIGTERM and a first Ctrl-C stop the loop cleanly (recordings are finalized on the way
    out); a second Ctrl-C interrupts at once."""
    def stop(signum, _frame) -> None:
        if signum == signal.SIGINT and server.stopping:
            raise KeyboardInterrupt
        log.warning("%s received: stopping", signal.Signals(signum).name)
        server.stop()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def server_report(server) -> str:
    """Per-stream summary of everything the server finished."""
    from engine.report import CELL_TABLE, text_table

    rows = [done["summary"] for done in server.finished.values()]
    if not rows:
        return "no stream finished\n"
    return "\nper-cell summary\n" + text_table(rows, CELL_TABLE)
