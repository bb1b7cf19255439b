"""Start demo streams from the page: ``castream simulate --stream-to`` or ``castream replay``
as subprocesses feeding the engine's ingest endpoint (for demos and training new users).

Off unless ``castream dashboard --allow-launch DIR``: a replayed file must lie inside ``DIR``
(no other path is read), streams go only to the engine's own ``--ingest`` endpoint, the
engine must be listening there before anything starts, and the processes' output goes to
``work_dir`` (next to the store). A launched process fails within seconds when the engine
stops answering (acknowledged delivery), and the page shows that failure.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Every process started from the page; stopped when the dashboard process exits.
_STARTED: list[subprocess.Popen] = []
TIFF_SUFFIXES = (".tif", ".tiff", ".lsm")


@dataclass(frozen=True)
class LaunchRequest:
    """One stream to start. ``source`` is ``linescan`` | ``movie`` (simulated) or ``replay``."""

    source: str
    ingest: str
    seconds: float = 10.0
    phenotype: str = "wt"
    seed: int = 0
    rate: float = 1.0
    file: str = ""
    allowed_dir: str = ""  # replayed files must lie inside it
    curve_dir: str = ""  # CURVE client keys when the engine requires them
    curve_name: str = "client"

    def curve_flags(self) -> list[str]:
        """``--curve-dir DIR --curve-name NAME`` for an engine with CURVE, else nothing."""
        return ["--curve-dir", self.curve_dir, "--curve-name", self.curve_name] \
            if self.curve_dir else []

    def command(self, out_dir: Path) -> list[str]:
        """The ``castream`` command line (run with this interpreter's ``engine.cli``)."""
        base = [sys.executable, "-m", "engine.cli"]
        if self.source == "replay":
            path = replay_path(self.file, self.allowed_dir)
            return [*base, "replay", str(path), "--endpoint", self.ingest,
                    "--rate", f"{self.rate:g}", "--no-progress", *self.curve_flags()]
        if self.source not in ("linescan", "movie"):
            raise ValueError(f"unknown source {self.source!r}")
        return [*base, "simulate", "--mode", self.source, "--phenotype", self.phenotype,
                "--seconds", f"{self.seconds:g}", "--seed", str(int(self.seed)),
                "--out", str(out_dir), "--stream-to", self.ingest, "--rate", f"{self.rate:g}",
                *self.curve_flags()]

    def describe(self) -> str:
        """A short human label."""
        if self.source == "replay":
            return f"replay {Path(self.file).name} at {self.rate:g}×"
        return (f"simulated {self.source} ({self.phenotype}, seed {self.seed}, "
                f"{self.seconds:g} s at {self.rate:g}×)")


@dataclass
class Launched:
    """A started subprocess and where its log goes."""

    label: str
    process: subprocess.Popen
    log_path: Path
    started_s: float = field(default_factory=time.time)

    def state(self) -> str:
        """``running``, ``finished`` or ``failed (rc N)``."""
        rc = self.process.poll()
        if rc is None:
            return "running"
        return "finished" if rc == 0 else f"failed (rc {rc})"

    def log_tail(self, n_lines: int = 5) -> str:
        """The last lines of the process output."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n_lines:])


def replay_path(file: str, allowed_dir: str) -> Path:
    """``file`` resolved, if it is a TIFF inside ``allowed_dir``; ``ValueError`` otherwise
    (the message never says whether a path outside the folder exists)."""
    if not file:
        raise ValueError("choose a TIFF file to replay")
    if not allowed_dir:
        raise ValueError("replay is off: start the dashboard with --allow-launch DIR")
    root = Path(allowed_dir).resolve()
    path = (root / file).resolve()
    if root not in path.parents:
        raise ValueError(f"only files inside {root} can be replayed")
    if path.suffix.lower() not in TIFF_SUFFIXES or not path.is_file():
        raise ValueError(f"file not found: {path.relative_to(root)} (a TIFF in {root})")
    return path


def replayable_files(allowed_dir: str, limit: int = 500) -> list[str]:
    """TIFF files under ``allowed_dir`` (relative paths, sorted; at most ``limit``)."""
    root = Path(allowed_dir)
    if not allowed_dir or not root.is_dir():
        return []
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                   if p.suffix.lower() in TIFF_SUFFIXES and p.is_file())
    return found[:limit]


def engine_listening(endpoint: str, timeout_s: float = 5.0, curve=None) -> bool:
    """A ZeroMQ peer completes the handshake at the ingest ``endpoint`` within ``timeout_s``
    (a plain TCP probe would be counted by the ingest as an incompatible client); ``curve``:
    :class:`~acquisition.curve.CurveClient` keys for an engine with CURVE. The default wait is
    generous: on a loaded 2-core machine (engine, dashboard, browser) a 2 s wait once failed
    although the engine was up (the browser test, 2026-12-04)."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        if curve is not None:
            curve.apply(sock)
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            if monitor.poll(max(1, int(left_s * 1000))):
                if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return True
        return False
    except zmq.ZMQError:
        return False
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def launch(request: LaunchRequest, work_dir: str | Path | None = None) -> Launched:
    """Start the request's command in the background once the engine is found listening;
    output goes to a log file in a new folder under ``work_dir``."""
    if not request.ingest.startswith(("tcp://", "ipc://")):
        raise ValueError("the ingest endpoint must look like tcp://HOST:PORT")
    curve = None
    if request.curve_dir:
        from acquisition.curve import CurveClient

        curve = CurveClient.from_folder(request.curve_dir, request.curve_name)
    if not engine_listening(request.ingest, curve=curve):
        raise ValueError(f"no engine is listening at {request.ingest}: is `castream serve` "
                         "running? Nothing was started")
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="castream-demo-", dir=work_dir))
    command = request.command(run_dir / "data")
    log_path = run_dir / "output.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _STARTED.append(process)
    log.info("started %s: %s (pid %d)", request.describe(), " ".join(command), process.pid)
    return Launched(request.describe(), process, log_path)


@atexit.register
def stop_started() -> None:
    """Terminate the streams this dashboard started that still run (at exit)."""
    for process in _STARTED:
        if process.poll() is None:
            log.info("stopping pid %d started from the dashboard", process.pid)
            process.terminate()
