"""ZeroMQ CURVE for exposed endpoints (issue 11): keys made by `castream keys`, an allow-list,
encrypted and authenticated ingest and event feed; clients without an allowed key get nothing
through."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from acquisition.curve import CurveClient, make_keys
from acquisition.ingest import Ingest
from acquisition.publisher import Publisher, PublisherTimeout
from acquisition.simulate import LinescanParams, simulate_linescan, write_recording
from engine.cli import main
from engine.commands._exposure import check_exposure

DATA = np.arange(300 * 16, dtype=np.uint16).reshape(300, 16)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    assert main(["keys", str(folder), "--client", "mic"]) == 0
    return folder


def _send(endpoint: str, curve: CurveClient | None, stream: str) -> int:
    with Publisher(endpoint, stream=stream, ack_timeout_ms=700, curve=curve) as pub:
        pub.start("linescan", "uint16", (16,), pixel_um=0.2, dt_ms=1.0)
        pub.send(DATA)
        return pub.stop().recorded


def test_keys_command_makes_the_layout_and_keeps_existing_keys(keys: Path) -> None:
    names = sorted(p.name for p in keys.iterdir())
    assert names == ["allowed", "mic.key", "mic.key_secret", "server.key", "server.key_secret"]
    assert [p.name for p in (keys / "allowed").iterdir()] == ["mic.key"]
    before = (keys / "server.key_secret").read_bytes()
    assert make_keys(keys, "mic") == []  # nothing rewritten
    assert (keys / "server.key_secret").read_bytes() == before


def test_only_allowed_clients_get_through(keys: Path, tmp_path: Path, ipc_endpoint: str) -> None:
    make_keys(tmp_path / "elsewhere", "intruder")  # a keypair not on the allow-list
    server_public = CurveClient.from_folder(keys, "mic").server_public
    intruder = CurveClient.from_folder(tmp_path / "elsewhere", "intruder")
    with Ingest(ipc_endpoint, record_dir=tmp_path / "raw", curve_dir=keys) as ingest:
        assert _send(ipc_endpoint, CurveClient.from_folder(keys, "mic"), "allowed") == 300
        for curve in (None, CurveClient(server_public, intruder.public, intruder.secret)):
            with pytest.raises(PublisherTimeout):
                _send(ipc_endpoint, curve, "refused")
        assert "refused" not in ingest.stats()


def test_event_feed_needs_an_allowed_key(keys: Path, ipc_endpoint: str) -> None:
    from engine.sinks.publish import EventPublisher
    from ui.live import PubSubscriber

    endpoint = ipc_endpoint  # inproc:// bypasses ZeroMQ security
    publisher = EventPublisher(endpoint, curve_dir=keys)
    allowed = PubSubscriber(endpoint, curve=CurveClient.from_folder(keys, "mic"))
    anonymous = PubSubscriber(endpoint)
    try:
        deadline = time.monotonic() + 10
        while not allowed.strips("s") and time.monotonic() < deadline:
            publisher.publish_preview("s", 0, np.zeros((2, 2), np.uint8), lo=0.0, hi=1.0, step=1)
            time.sleep(0.02)  # PUB/SUB joins asynchronously: resend until it is heard
        assert allowed.strips("s") and not anonymous.strips("s")
    finally:
        allowed.close()
        anonymous.close()
        publisher.close()


def test_replay_cli_with_keys(keys: Path, tmp_path: Path, ipc_endpoint: str) -> None:
    rec = simulate_linescan(LinescanParams(n_lines=400, n_pixels=32), seed=2)
    write_recording(rec, tmp_path, "cell")
    with Ingest(ipc_endpoint, record_dir=tmp_path / "raw", curve_dir=keys) as ingest:
        rc = main(["replay", str(tmp_path / "cell.tif"), "--endpoint", ipc_endpoint, "--fast",
                   "--no-progress", "--curve-dir", str(keys), "--curve-name", "mic"])
        assert rc == 0
        assert ingest.stats()["cell"].frames_recorded == 400


def test_exposed_bind_is_allowed_with_keys_and_missing_keys_are_one_line(tmp_path, caplog):
    check_exposure({"--endpoint": "tcp://0.0.0.0:5555"}, insecure=False, authenticated=True)
    with pytest.raises(ValueError, match="--curve-dir"):
        check_exposure({"--endpoint": "tcp://0.0.0.0:5555"}, insecure=False)
    rc = main(["ingest", "--endpoint", f"ipc://{tmp_path}/x.sock", "--curve-dir",
               str(tmp_path / "nokeys"), "--seconds", "0.1", "--no-record"])
    assert rc == 1
    assert "castream keys" in caplog.text
