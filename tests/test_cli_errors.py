"""Errors a user can cause are one line and a non-zero exit; ``--debug`` shows the traceback
(issue 11): busy dashboard ports for ``demo`` and ``dashboard``, the dashboard launcher's
settings."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from engine.cli import main


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A localhost port with a listening socket on it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_demo_on_a_busy_dashboard_port_is_one_clear_line(busy_port, tmp_path, caplog) -> None:
    rc = main(["demo", "--port", str(busy_port), "--out", str(tmp_path / "demo"),
               "--seconds", "0.5"])
    assert rc == 1
    [line] = _error_lines(caplog)
    assert f"port {busy_port}" in line and "already in use" in line and "--port" in line
    assert not (tmp_path / "demo").exists()  # failed before simulating anything


def test_dashboard_on_a_busy_port_is_one_clear_line(busy_port, tmp_path, caplog) -> None:
    rc = main(["dashboard", "--store", str(tmp_path / "s.sqlite"), "--port", str(busy_port),
               "--headless"])
    assert rc == 1
    [line] = _error_lines(caplog)
    assert f"port {busy_port}" in line and "--port" in line


def test_debug_shows_the_traceback(busy_port, tmp_path) -> None:
    argv = ["dashboard", "--store", str(tmp_path / "s.sqlite"), "--port", str(busy_port)]
    with pytest.raises(ValueError, match="already in use"):
        main(["--debug", *argv])
    with pytest.raises(ValueError, match="already in use"):
        main([*argv, "--debug"])


def test_dashboard_launcher_needs_a_folder_and_the_engine_ingest(tmp_path, caplog) -> None:
    store = str(tmp_path / "s.sqlite")
    assert main(["dashboard", "--store", store, "--allow-launch", str(tmp_path / "no")]) == 1
    assert "is not a folder" in caplog.text
    assert main(["dashboard", "--store", store, "--allow-launch", str(tmp_path)]) == 1
    assert "--allow-launch needs --ingest" in caplog.text
