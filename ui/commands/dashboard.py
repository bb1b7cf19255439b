"""``castream dashboard``: the live Streamlit page over the engine's store and PUB feed."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from pathlib import Path

from engine.child_process import stop_child
from engine.commands._curve_args import add_curve_client_arguments

HELP = "open the live dashboard (Streamlit) on the engine's store and live feed"

log = logging.getLogger("castream.dashboard")

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="SQLite store of `castream serve --store`")
    parser.add_argument("--events", default="",
                        help="the engine's PUB endpoint (`serve --publish`) for live images, "
                             "e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--ingest", default="",
                        help="the engine's ingest endpoint (`serve --endpoint`); with "
                             "--allow-launch, the page starts streams into it")
    parser.add_argument("--allow-launch", metavar="DIR", default="",
                        help="let the page start simulated streams and replay TIFF files from "
                             "DIR (only there) into --ingest; off by default")
    parser.add_argument("--record-dir", metavar="DIR", default="",
                        help="`castream serve --record-dir`: the Cells view draws the recorded "
                             "structure images (without it, their label images)")
    add_curve_client_arguments(parser)
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to serve the page on (default: %(default)s, localhost only)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: %(default)s)")
    parser.add_argument("--headless", action="store_true",
                        help="do not open a browser on this machine")
    parser.add_argument("--refresh-s", type=float, default=1.0,
                        help="seconds between page refreshes (default: %(default)s)")
    parser.add_argument("--stale-s", type=float, default=10.0,
                        help="warn when the engine wrote nothing for this long (default: %(default)s)")


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """``python -m streamlit run app.py`` with the server options of ``args``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", args.address,
        "--server.port", str(args.port),
        # always headless: otherwise Streamlit's first run asks for an e-mail address on stdin
        # and the page never starts when nobody answers (we open the browser ourselves)
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--theme.base", "light",
    ]


def dashboard_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of the Streamlit process (settings for :mod:`ui.config`)."""
    from ui.config import DashboardConfig

    config = DashboardConfig(
        store_path=str(Path(args.store).expanduser().resolve()),
        events_endpoint=args.events, ingest_endpoint=args.ingest,
        refresh_s=args.refresh_s, stale_s=args.stale_s,
        launch_dir=str(Path(args.allow_launch).expanduser().resolve()) if args.allow_launch
        else "",
        curve_dir=str(Path(args.curve_dir).resolve()) if args.curve_dir else "",
        curve_name=args.curve_name,
        record_dir=str(Path(args.record_dir).expanduser().resolve()) if args.record_dir else "",
    )
    return {**os.environ, **config.to_env()}


def run(args: argparse.Namespace) -> int:
    """Run Streamlit in a child process until it exits, Ctrl-C or SIGTERM (which stop it too)."""
    if args.refresh_s <= 0 or args.stale_s <= 0:
        raise ValueError("--refresh-s and --stale-s must be > 0")
    if args.allow_launch and not Path(args.allow_launch).is_dir():
        raise ValueError(f"--allow-launch {args.allow_launch} is not a folder: name the folder "
                         "the page may replay TIFF files from")
    if args.allow_launch and not args.ingest:
        raise ValueError("--allow-launch needs --ingest, the engine's own ingest endpoint "
                         "(`castream serve --endpoint`), where launched streams go")
    _require_streamlit()
    if args.address not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving the dashboard on %s: it is reachable from other machines", args.address)
    from engine.commands._curve_args import curve_client
    from engine.commands._ports import check_port_free

    check_port_free(args.address, args.port, "--port")
    curve_client(args)  # missing or unreadable keys: one line now, not a silent page later
    command = streamlit_command(args)
    log.info("dashboard on http://%s:%d (store %s)", args.address, args.port, args.store)
    process = subprocess.Popen(command, env=dashboard_env(args))
    if not args.headless:
        threading.Thread(target=open_browser_when_up, args=(args.address, args.port, process),
                         daemon=True).start()
    previous = _on_sigterm(_interrupt)
    try:
        return process.wait()
    finally:
        if previous is not None:
            _on_sigterm(previous)
        stop_child(process)


def _require_streamlit() -> None:
    """Streamlit runs in a child process: without it installed here, fail now with the
    ModuleNotFoundError the CLI turns into one line naming the ``ui`` extra."""
    if importlib.util.find_spec("streamlit") is None:
        raise ModuleNotFoundError("No module named 'streamlit'", name="streamlit")


def open_browser_when_up(address: str, port: int, process: subprocess.Popen,
                         timeout_s: float = 60.0) -> bool:
    """Open the page in the user's browser once the server accepts connections (False when it
    exited or did not come up within ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)  # polling a port that is not up yet; not a test wait
    else:
        return False
    host = f"[{address}]" if ":" in address else address
    return webbrowser.open(f"http://{host}:{port}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM (main thread only); returns the previous one."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None
