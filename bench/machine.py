"""What the benchmarks print about the machine they ran on, and the CPU time, memory and file
descriptors a ``serve`` uses (its process and its analysis processes), read from ``/proc``."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# -- what a serve uses: this process and its analysis processes (serve --processes) ----------
def _pids(processes) -> list[str]:
    """``self`` and the pids of ``processes`` (an ``AnalysisProcesses``, or None) still running."""
    others = processes.processes if processes is not None else []
    return ["self"] + [str(p.proc.pid) for p in others if p.alive]


def cpu_seconds(processes=None) -> float:
    """CPU-seconds used so far by this process and by ``processes``' analysis processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in _pids(processes):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def rss_mib(processes=None) -> float:
    """Resident memory of this process and of ``processes``' analysis processes, MiB."""
    total = 0.0
    for pid in _pids(processes):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:  # exited meanwhile
            continue
        total += next((float(line.split()[1]) / 1024 for line in status.splitlines()
                       if line.startswith("VmRSS")), 0.0)
    return total


def open_fds(processes=None) -> int:
    """Open file descriptors of this process and of ``processes``' analysis processes."""
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in _pids(processes))
