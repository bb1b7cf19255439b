"""Crash safety (issue 11): after ``kill -9`` of ``serve`` mid-stream every acknowledged chunk
is recoverable pixel-exact with ``castream recover``; SIGTERM finalizes recordings; a busy
port is one error line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zmq

from acquisition.publisher import Publisher, PublisherError

STARTUP_MS = 60_000  # serve imports the engine before it answers


def _serve(tmp_path: Path, endpoint: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "engine.cli", "serve", "--endpoint", endpoint,
               "--publish", "none", "--store", str(tmp_path / "store.sqlite"),
               "--record-dir", str(tmp_path / "raw"), "--detector", "classical", *extra]
    return subprocess.Popen(command, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _lines(n: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 4096, (n, 64), dtype=np.uint16)


def _stream_until_acked(endpoint: str, data: np.ndarray) -> tuple[Publisher, int]:
    """Start a stream, send ``data``, wait until it is all acknowledged; (publisher, recorded)."""
    pub = Publisher(endpoint, stream="crash", chunk_lines=100, ack_timeout_ms=STARTUP_MS)
    pub.start("linescan", "uint16", (64,), pixel_um=0.2, dt_ms=1.5)
    pub.send(data)
    report = pub.sync()
    return pub, report.recorded


def test_kill_9_leaves_every_acknowledged_chunk_recoverable(tmp_path: Path,
                                                            ipc_endpoint: str) -> None:
    from engine.cli import main

    server = _serve(tmp_path, ipc_endpoint)
    data = _lines(5000)
    try:
        pub, recorded = _stream_until_acked(ipc_endpoint, data)
        assert recorded == 5000
    finally:
        server.kill()  # SIGKILL mid-stream: no stop, no conversion
        server.wait(30)
    pub.ack_timeout_s = 0.5
    with pytest.raises((PublisherError, TimeoutError)):  # the receiver is gone
        pub.stop()
    pub.close()
    raw = tmp_path / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["crash.idx", "crash.raw", "crash.start.json"]
    assert main(["recover", str(raw)]) == 0
    np.testing.assert_array_equal(tifffile.imread(raw / "crash.tif"), data)
    summary = json.loads((raw / "crash.json").read_text())
    assert summary["frames_recorded"] == 5000 and summary["stopped"] is False
    assert main(["recover", str(raw)]) == 0  # idempotent: nothing left to do


def test_sigterm_finalizes_the_recording(tmp_path: Path, ipc_endpoint: str) -> None:
    server = _serve(tmp_path, ipc_endpoint)
    data = _lines(3000)
    try:
        pub, recorded = _stream_until_acked(ipc_endpoint, data)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    pub.close(linger_ms=0)
    raw = tmp_path / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["crash.json", "crash.tif"]
    np.testing.assert_array_equal(tifffile.imread(raw / "crash.tif"), data[:recorded])
    assert "Traceback" not in server.stderr.read()


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    context = zmq.Context.instance()
    holder = context.socket(zmq.ROUTER)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        server = _serve(tmp_path, f"tcp://127.0.0.1:{port}")
        _, stderr = server.communicate(timeout=120)
    finally:
        holder.close(linger=0)
    assert server.returncode == 1
    assert "Traceback" not in stderr and "Address already in use" in stderr
    assert "choose free addresses" in stderr


def test_serve_warns_about_unfinished_recordings(tmp_path: Path, ipc_endpoint: str) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "old.start.json").write_text("{}")
    server = _serve(tmp_path, ipc_endpoint, "--max-streams", "0")
    _, stderr = server.communicate(timeout=120)
    assert "castream recover" in stderr and os.fspath(raw) in stderr


def test_chunks_are_reported_written_only_once_synced(tmp_path: Path, monkeypatch) -> None:
    import acquisition.recorder as recorder_module
    from acquisition.recorder import RawRecorder
    from acquisition.wire import StartHeader

    order: list[str] = []
    real_sync = recorder_module.os.fdatasync
    monkeypatch.setattr(recorder_module.os, "fdatasync",
                        lambda fd: (order.append("sync"), real_sync(fd))[1])
    recorder = RawRecorder(tmp_path)
    recorder.open_stream(StartHeader("s", "linescan", "uint16", (8,), 0.2, 1.0))
    for first in range(0, 40, 10):
        recorder.write("s", first, 10, np.zeros((10, 8), np.uint16),
                       on_written=lambda: order.append("written"))
    assert recorder.flush(10)
    recorder.close()
    assert order.count("written") == 4 and order.index("sync") < order.index("written")


def test_cli_ingest_on_a_busy_port_is_one_clear_line(caplog) -> None:
    from engine.cli import main

    holder = zmq.Context.instance().socket(zmq.ROUTER)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        code = main(["ingest", "--endpoint", f"tcp://127.0.0.1:{port}", "--no-record",
                     "--seconds", "1"])
    finally:
        holder.close(linger=0)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert code == 1 and len(errors) == 1 and "Address already in use" in errors[0]


@pytest.mark.parametrize("argv", [
    ["serve", "--endpoint", "tcp://0.0.0.0:0"],
    ["serve", "--endpoint", "tcp://127.0.0.1:0", "--publish", "tcp://*:0"],
    ["ingest", "--endpoint", "tcp://192.168.1.5:5555", "--no-record"],
])
def test_exposed_addresses_need_insecure(argv, caplog) -> None:
    from engine.cli import main

    assert main(argv) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "without authentication" in errors[0] and "--insecure" in errors[0]


def test_local_addresses_are_local() -> None:
    from engine.commands._exposure import is_local

    assert all(is_local(e) for e in ("tcp://127.0.0.1:5555", "tcp://localhost:1",
                                     "ipc:///tmp/x.sock", "tcp://[::1]:5"))
    assert not any(is_local(e) for e in ("tcp://0.0.0.0:5555", "tcp://*:5556",
                                         "tcp://10.0.0.2:1", "tcp://127.example.org:1"))
