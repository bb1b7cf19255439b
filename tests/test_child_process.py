"""A child process is stopped for sure, however stubborn: ``castream demo``'s Ctrl-C sends
SIGINT first (what a terminal sends), then SIGTERM, then SIGKILL; ``castream dashboard``
SIGTERM, then SIGKILL (:mod:`engine.child_process`)."""

from __future__ import annotations

import subprocess
import sys

from engine.child_process import CTRL_C_FIRST, stop_child

READY = "import sys\nsys.stdout.write('ready\\n')\nsys.stdout.flush()\n"


def _child(setup: str, body: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", setup + READY + body],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"  # its signal handlers are in place
    return process


def test_a_child_that_honours_ctrl_c_stops_at_the_first_signal():
    process = _child("import signal, sys, time\n"
                     "signal.signal(signal.SIGINT, lambda *_: sys.exit(3))\n", "time.sleep(60)\n")
    stop_child(process, grace_s=5.0, signals=CTRL_C_FIRST)
    assert process.returncode == 3  # its own Ctrl-C handler ran


def test_a_child_that_ignores_sigint_and_sigterm_is_killed():
    process = _child("import signal, time\n"
                     "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n", "time.sleep(60)\n")
    stop_child(process, grace_s=0.5, signals=CTRL_C_FIRST)
    assert process.returncode == -9


def test_a_child_that_already_ended_is_left_alone():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    stop_child(process, grace_s=0.5)
    assert process.returncode == 0


def test_terminate_first_kills_a_child_that_ignores_sigterm():
    process = _child("import signal, time\n"
                     "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n", "time.sleep(60)\n")
    stop_child(process, grace_s=0.5)
    assert process.returncode == -9
