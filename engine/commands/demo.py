"""``castream demo``: a simulated experiment through the live engine, end to end.

Two simulated cells (wild type and CPVT-like) stream over ZeroMQ into an in-process ``serve``
(ingest → raw recording → analysis → SQLite store + event PUB); the demo prints what was sent,
received and recorded, the detected events and a per-cell summary, and (unless ``--headless``)
keeps the live dashboard running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

from acquisition.stream_kind import StreamKind

from ..child_process import CTRL_C_FIRST, stop_child
from ._engine_args import add_engine_arguments, engine_config
from .serve import add_processes_argument, processes_for

HELP = "run a simulated two-cell experiment through the live engine and print the results"

log = logging.getLogger("castream.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("castream-demo"),
                        help="folder for recordings, store and results (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each simulated recording (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="playback speed, 1 = real time (default: %(default)s)")
    parser.add_argument("--mode-data", choices=[kind.value for kind in StreamKind.time_series()],
                        default=StreamKind.LINESCAN.value,
                        help="simulated acquisition mode (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2026, help="simulation seed")
    parser.add_argument("--headless", action="store_true",
                        help="no dashboard: print the results and exit (for CI)")
    parser.add_argument("--port", type=int, default=8501, help="dashboard port")
    add_processes_argument(parser)
    add_engine_arguments(parser)


def free_tcp_endpoint() -> str:
    """A localhost TCP endpoint on a port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def run(args: argparse.Namespace) -> int:
    from engine.serve_remote import AnalysisStartError

    if not args.headless:
        from ._ports import check_port_free

        check_port_free("127.0.0.1", args.port, "--port")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    recordings = _simulate(args)
    store = out / "castream.sqlite"
    store.unlink(missing_ok=True)
    publish = free_tcp_endpoint()
    t0 = time.monotonic()
    config = engine_config(args)
    try:
        return _run_demo(args, config, recordings, store, publish, out, t0)
    except AnalysisStartError as exc:
        log.error("%s; the demo did not start (--processes 0 analyses in one process)", exc)
        return 1


def _run_demo(args, config, recordings, store, publish, out, t0) -> int:
    from engine.runtime import background_server

    with background_server(endpoint="tcp://127.0.0.1:0", store=store, record_dir=out / "raw",
                           config=config, publish=publish,
                           processes=processes_for(args, config)) as server:
        dashboard = None if args.headless else _start_dashboard(args, store, publish,
                                                                 server.ingest.endpoint)
        sent = _stream_all(recordings, server.ingest.endpoint, args.rate)
        if not server.wait_finished(len(recordings), timeout_s=600):
            log.error("the engine did not finish the streams in time")
            return 1
        ingest_stats = {name: s.as_dict() for name, s in server.ingest.stats().items()}
    _print_results(server, sent, ingest_stats, store, out, time.monotonic() - t0)
    if dashboard is not None:
        _wait_dashboard(dashboard, args.port)
    return 0


def _simulate(args):
    from acquisition.simulate import (
        LinescanParams,
        MovieParams,
        simulate_linescan,
        simulate_movie,
    )

    recordings = []
    for i, phenotype in enumerate(("wt", "cpvt")):
        if StreamKind(args.mode_data).is_linescan:
            rec = simulate_linescan(LinescanParams(phenotype=phenotype,
                                                   duration_s=args.seconds), args.seed + i)
        else:
            rec = simulate_movie(MovieParams(phenotype=phenotype, duration_s=args.seconds),
                                 args.seed + i)
        log.info("simulated %s: %s %s, %d events", rec.cell, rec.axes, rec.data.shape,
                 len(rec.events))
        recordings.append(rec)
    return recordings


def _stream_all(recordings, endpoint: str, rate: float) -> dict[str, int]:
    """Stream every recording at once, like one microscope each; returns frames sent."""
    from concurrent.futures import ThreadPoolExecutor

    from acquisition.simulate import stream_recording

    log.info("streaming %d cells into %s at %.3g× real time", len(recordings), endpoint, rate)
    with ThreadPoolExecutor(len(recordings)) as pool:
        futures = {rec.cell: pool.submit(stream_recording, rec, endpoint, rate)
                   for rec in recordings}
        return {cell: future.result() for cell, future in futures.items()}


def _start_dashboard(args, store: Path, publish: str, ingest: str):
    cmd = [sys.executable, "-m", "engine.cli", "dashboard", "--store", str(store),
           "--events", publish, "--ingest", ingest, "--port", str(args.port), "--headless"]
    log.info("dashboard: http://127.0.0.1:%d", args.port)
    return subprocess.Popen(cmd)


def _wait_dashboard(process, port: int) -> None:
    sys.stdout.write(f"\nDashboard (live during the run, history now): http://127.0.0.1:{port}"
                     "\nPress Ctrl-C to stop.\n")
    sys.stdout.flush()
    try:
        process.wait()
    except KeyboardInterrupt:
        stop_child(process, signals=CTRL_C_FIRST)


def _print_results(server, sent, ingest_stats, store, out, elapsed_s) -> None:
    from engine.report import CELL_TABLE, events_table, text_table

    acquisition_rows = [{
        "stream": name, "sent": sent.get(name), "received": s["frames_received"],
        "recorded": s["frames_recorded"], "chunks": s["messages"],
        "gaps": s["missing_frames"], "errors": s["errors"],
        "recording": (s["recording"] or "") + ".tif",
    } for name, s in ingest_stats.items() if not name.startswith("_")]
    columns = [(k, k, str) for k in ("stream", "sent", "received", "recorded", "chunks",
                                     "gaps", "errors", "recording")]
    events = [e for done in server.finished.values() for e in done["events"]]
    n_events = sum(done["n_events"] for done in server.finished.values())
    write = sys.stdout.write
    write("\nacquisition (lines sent → received → recorded)\n" + text_table(acquisition_rows,
                                                                           columns))
    write(f"\ndetected events ({n_events})\n" + events_table(events, limit=15))
    write("\nper-cell summary\n" + text_table(
        [done["summary"] for done in server.finished.values()], CELL_TABLE))
    write(f"\nevent store: {store}\nraw recordings: {out / 'raw'}\n"
          f"demo took {elapsed_s:.1f} s\n")
