"""Start demo streams from the page: ``castream simulate --stream-to`` or ``castream replay``
as subprocesses feeding the engine's ingest endpoint (for demos and training new users)."""

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

    def command(self, out_dir: Path) -> list[str]:
        """The ``castream`` command line (run with this interpreter's ``engine.cli``)."""
        base = [sys.executable, "-m", "engine.cli"]
        if self.source == "replay":
            if not self.file:
                raise ValueError("choose a TIFF file to replay")
            if not Path(self.file).is_file():
                raise ValueError(f"file not found: {self.file}")
            return [*base, "replay", self.file, "--endpoint", self.ingest,
                    "--rate", f"{self.rate:g}", "--no-progress"]
        if self.source not in ("linescan", "movie"):
            raise ValueError(f"unknown source {self.source!r}")
        return [*base, "simulate", "--mode", self.source, "--phenotype", self.phenotype,
                "--seconds", f"{self.seconds:g}", "--seed", str(int(self.seed)),
                "--out", str(out_dir), "--stream-to", self.ingest, "--rate", f"{self.rate:g}"]

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


def launch(request: LaunchRequest, work_dir: str | Path | None = None) -> Launched:
    """Start the request's command in the background; output goes to a log file."""
    if not request.ingest.startswith(("tcp://", "ipc://")):
        raise ValueError("the ingest endpoint must look like tcp://HOST:PORT")
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
