"""Acknowledged delivery and faults at the ingest (issue 11): the publisher learns what was
received and recorded, and never reports success for data that was not recorded."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import tifffile
import zmq

from acquisition.ingest_counters import MAX_TRACKED_STREAMS
from acquisition.publisher import (
    DeliveryError,
    Publisher,
    PublisherRefused,
    PublisherTimeout,
)
from acquisition.replay import replay_file
from acquisition.wire import ChunkHeader, StopHeader, decode_reply, encode_message
from tests.reliability_faults import fail_writes_of, make_raw_files_read_only

TIMEOUT_S = 10.0
LINESCAN = dict(mode="linescan", dtype="uint16", shape=(16,), pixel_um=0.2, dt_ms=1.0)


def _lines(n: int, seed: int = 0, width: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (n, width), dtype=np.uint16)


def _dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _reply(sock: zmq.Socket) -> dict:
    assert sock.poll(int(TIMEOUT_S * 1000)), "no reply from the ingest"
    return decode_reply(sock.recv())


def _refusal(sock: zmq.Socket) -> dict:
    while (reply := _reply(sock))["kind"] != "refused":
        pass
    return reply


def _free_tcp_endpoint() -> str:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def test_stop_reports_sent_received_recorded(ingest_factory, tmp_path: Path) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    data = _lines(1000)
    with Publisher(ingest.endpoint, stream="acked", chunk_lines=64) as pub:
        pub.start(**LINESCAN)
        pub.send(data)
        report = pub.stop()
    assert (report.sent, report.received, report.recorded, report.missing_frames) == (
        1000, 1000, 1000, 0)
    assert report.complete and report.recording.endswith("acked")
    assert ingest.wait_until_stopped(["acked"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "acked.tif"), data)


def test_receiver_without_recording_says_so(ingest_factory) -> None:
    ingest = ingest_factory()
    with Publisher(ingest.endpoint, stream="norec") as pub:
        pub.start(**LINESCAN)
        pub.send(_lines(100))
        report = pub.stop()
    assert report.recorded is None and report.received == 100 and report.complete
    assert "not recorded" in report.describe()


def test_dead_endpoint_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "sim.tif", _lines(2000))
    started = time.monotonic()
    with pytest.raises(PublisherTimeout, match="no answer from a castream ingest"):
        replay_file(tmp_path / "sim.tif", _free_tcp_endpoint(), rate=None, pixel_um=0.2,
                    dt_ms=1.0, progress=False, ack_timeout_ms=500)
    assert time.monotonic() - started < 5.0


def test_cli_replay_to_dead_endpoint_exits_nonzero(tmp_path: Path, caplog) -> None:
    from engine.cli import main

    tifffile.imwrite(tmp_path / "sim.tif", _lines(2000))
    started = time.monotonic()
    code = main(["replay", str(tmp_path / "sim.tif"), "--endpoint", _free_tcp_endpoint(),
                 "--fast", "--pixel-um", "0.2", "--dt-ms", "1", "--no-progress",
                 "--ack-timeout-s", "0.5"])
    assert code == 1 and time.monotonic() - started < 5.0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "no answer from a castream ingest" in errors[0]
    assert not any("replayed" in r.getMessage() for r in caplog.records)


def test_cli_simulate_stream_to_dead_endpoint_exits_nonzero(tmp_path: Path, caplog) -> None:
    from engine.cli import main

    code = main(["simulate", "--seconds", "0.5", "--out", str(tmp_path), "--stream-to",
                 _free_tcp_endpoint(), "--rate", "0", "--ack-timeout-s", "0.5"])
    assert code == 1
    assert any("no answer from a castream ingest" in r.getMessage() for r in caplog.records)


def test_disk_full_fails_the_publisher_and_the_next_stream_records(
    ingest_factory, tmp_path: Path, monkeypatch
) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    fail_writes_of(monkeypatch, "full", errno.ENOSPC)
    with pytest.raises(PublisherRefused, match="record_failed") as info:
        with Publisher(ingest.endpoint, stream="full", chunk_lines=64) as pub:
            pub.start(**LINESCAN)
            for block in np.split(_lines(64 * 50), 50):
                pub.send(block)
    assert "No space left" in str(info.value) or "ENOSPC" in str(info.value)
    stats = ingest.stats()["full"]
    assert stats.frames_recorded == 0 and stats.errors_by_code.get("record_failed", 0) >= 1
    # the recorder's writer thread survived: a later stream records everything
    data = _lines(640, seed=3)
    with Publisher(ingest.endpoint, stream="after", chunk_lines=64) as pub:
        pub.start(**LINESCAN)
        pub.send(data)
        assert pub.stop().recorded == 640
    assert ingest.wait_until_stopped(["after"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "after.tif"), data)


def test_unwritable_record_dir_refuses_the_start(ingest_factory, tmp_path: Path,
                                                 monkeypatch) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    make_raw_files_read_only(monkeypatch)
    pub = Publisher(ingest.endpoint, stream="ro")
    with pytest.raises(PublisherRefused, match="Read-only file system"):
        pub.start(**LINESCAN)
    pub.close()
    assert not list(tmp_path.iterdir())  # nothing half-made left behind


def test_foreign_chunk_and_stop_are_refused(ingest_factory, tmp_path: Path) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    data = _lines(640)
    intruder = _dealer(ingest.endpoint)
    with Publisher(ingest.endpoint, stream="victim", chunk_lines=64) as pub:
        pub.start(**LINESCAN)
        pub.send(data[:320])
        intruder.send_multipart(encode_message(
            ChunkHeader("victim", 99, 320, 64, 0, dtype="uint16"), _lines(64, seed=9)))
        assert _refusal(intruder)["code"] == "foreign_stream"
        intruder.send_multipart(encode_message(StopHeader("victim", 100, 320)))
        assert _refusal(intruder)["code"] == "foreign_stream"
        pub.send(data[320:])
        report = pub.stop()
    assert report.recorded == 640 and report.complete
    assert ingest.wait_until_stopped(["victim"], TIMEOUT_S)
    assert ingest.stats()["victim"].errors_by_code == {"foreign_stream": 2}
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "victim.tif"), data)
    intruder.close()


def test_wrong_dtype_bytes_of_the_right_size_are_refused(ingest_factory) -> None:
    ingest = ingest_factory()
    sock = _dealer(ingest.endpoint)
    sock.send_multipart([msgpack.packb({"v": 2, "kind": "start", "stream": "typed", "seq": 0,
                                        **{k: list(v) if k == "shape" else v
                                           for k, v in LINESCAN.items()}}), b""])
    assert _reply(sock)["kind"] == "ack"
    floats = np.zeros((2, 8), np.float32)  # 64 bytes = 2 lines of 16 uint16
    sock.send_multipart(encode_message(ChunkHeader("typed", 1, 0, 2, 0, dtype="float32"),
                                       floats))
    refusal = _refusal(sock)
    assert refusal["code"] == "dtype" and "float32" in refusal["message"]
    assert ingest.stats()["typed"].frames_received == 0
    sock.close()


def test_nan_payload_is_counted_and_warned(ingest_factory, caplog) -> None:
    ingest = ingest_factory()
    frames = np.ones((6, 4, 4), np.float32)
    frames[1, 0, 0], frames[3, 2, 2], frames[4, 1, 1] = np.nan, np.inf, -np.inf
    with Publisher(ingest.endpoint, stream="nan") as pub:
        pub.start("frames", "float32", (4, 4), pixel_um=0.2, dt_ms=5.0)
        pub.send(frames)
    assert ingest.stats()["nan"].nonfinite_values == 3
    assert any("NaN/Inf" in r.getMessage() for r in caplog.records)


def test_huge_gap_is_refused_and_bounded(ingest_factory) -> None:
    ingest = ingest_factory(max_gap_bytes=1 << 20)
    sock = _dealer(ingest.endpoint)
    with Publisher(ingest.endpoint, stream="g") as pub:
        pub.start(**LINESCAN)
        pub.send(_lines(64))
        pub.flush()
    sock.send_multipart([msgpack.packb({"v": 2, "kind": "start", "stream": "jump", "seq": 0,
                                        "mode": "linescan", "dtype": "uint16", "shape": [16],
                                        "pixel_um": 0.2, "dt_ms": 1.0}), b""])
    sock.send_multipart(encode_message(ChunkHeader("jump", 1, 10**9, 1, 0), _lines(1)))
    assert _refusal(sock)["code"] == "gap_too_large"
    sock.send_multipart(encode_message(ChunkHeader("jump", 2, 500_000, 1, 0), _lines(1)))
    assert _refusal(sock)["code"] == "gap_too_large"  # 500,000 lines x 32 B > 1 MiB
    assert ingest.stats()["jump"].missing_frames == 0
    sock.close()


def test_many_tiny_gaps_stay_fast_and_quiet(ingest_factory, caplog) -> None:
    ingest = ingest_factory(queue_size=50_000)
    sock = _dealer(ingest.endpoint)
    sock.send_multipart([msgpack.packb({"v": 2, "kind": "start", "stream": "holes", "seq": 0,
                                        "mode": "linescan", "dtype": "uint16", "shape": [16],
                                        "pixel_um": 0.2, "dt_ms": 1.0}), b""])
    line = _lines(1)
    started = time.monotonic()
    for k in range(20_000):
        sock.send_multipart(encode_message(ChunkHeader("holes", k + 1, 2 * k, 1, 0), line))
    assert ingest.wait_for(lambda s: "holes" in s and s["holes"].messages == 20_001, 60)
    elapsed = time.monotonic() - started
    stats = ingest.stats()["holes"]
    assert stats.missing_frames == 19_999 and len(stats.gap_ranges) == 19_999
    assert elapsed < 20.0, f"20,000 gapped messages took {elapsed:.1f} s"
    assert sum("ingest" in r.name for r in caplog.records) < 50
    sock.close()


def test_too_many_streams_and_unknown_names_stay_bounded(ingest_factory, caplog) -> None:
    ingest = ingest_factory(max_streams=3, record_dir=None)
    sock = _dealer(ingest.endpoint)
    for k in range(5):
        sock.send_multipart([msgpack.packb({"v": 2, "kind": "start", "stream": f"s{k}",
                                            "seq": 0, "mode": "linescan", "dtype": "uint16",
                                            "shape": [16], "pixel_um": 0.2, "dt_ms": 1.0}), b""])
    codes = [_reply(sock).get("code") for _ in range(5)]
    assert codes.count("too_many_streams") == 2
    for k in range(6000):  # chunks for never-started streams: counted, memory bounded
        sock.send_multipart(encode_message(ChunkHeader(f"ghost-{k}", 1, 0, 1, 0), _lines(1)))
    assert ingest.wait_for(lambda s: ingest.error_totals().get("unknown_stream") == 6000,
                           TIMEOUT_S * 3)
    assert len(ingest.stats()) <= MAX_TRACKED_STREAMS
    assert sum("unknown_stream" in r.getMessage() for r in caplog.records) < 20
    sock.close()


def test_chunk_over_64_mib_does_not_deadlock_the_recorder(ingest_factory,
                                                          tmp_path: Path) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    frames = np.random.default_rng(5).integers(0, 65_535, (9, 2048, 2048), dtype=np.uint16)
    with Publisher(ingest.endpoint, stream="big", max_message_bytes=80 << 20) as pub:
        pub.start("frames", "uint16", (2048, 2048), pixel_um=0.2, dt_ms=5.0)
        pub.send(frames)  # one 72 MiB message
        report = pub.stop()
    assert report.recorded == 9 and pub.messages_sent == 3
    assert ingest.wait_until_stopped(["big"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.memmap(tmp_path / "big.tif", mode="r"), frames)


def test_zero_chunk_stream_through_the_sdk(ingest_factory, tmp_path: Path) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    with Publisher(ingest.endpoint, stream="empty") as pub:
        pub.start(**LINESCAN)
    assert ingest.wait_until_stopped(["empty"], TIMEOUT_S)
    assert ingest.stats()["empty"].frames_received == 0


def test_missing_lines_make_stop_raise_with_the_ranges(ingest_factory) -> None:
    ingest = ingest_factory()
    pub = Publisher(ingest.endpoint, stream="short")
    pub.start(**LINESCAN)
    pub.send(_lines(100))
    with pytest.raises(DeliveryError, match=r"missing in \[\[100, 120\]\]") as info:
        pub.stop(n_total=120)  # the instrument acquired 20 lines more than were sent
    assert info.value.report.missing_frames == 20 and not info.value.report.complete
    pub.close()


def test_old_push_publisher_is_reported_not_silently_ignored(ingest_factory, caplog) -> None:
    ingest = ingest_factory()
    old = zmq.Context.instance().socket(zmq.PUSH)  # a publisher before wire v2
    old.setsockopt(zmq.LINGER, 0)
    old.connect(ingest.endpoint)
    assert ingest.wait_for(lambda s: ingest.error_totals().get("incompatible_peer", 0) >= 1,
                           TIMEOUT_S)
    old.close()
    assert any("not a castream wire-v2 publisher" in r.getMessage() for r in caplog.records)
    with Publisher(ingest.endpoint, stream="new") as pub:  # v2 publishers are not reported
        pub.start(**LINESCAN)
    assert "new" in ingest.stats()


def test_receiver_dying_mid_stream_is_noticed_while_sending(ingest_factory) -> None:
    ingest = ingest_factory()
    pub = Publisher(ingest.endpoint, stream="orphan", chunk_lines=1, ack_timeout_ms=300)
    pub.start(**LINESCAN)
    pub.send(_lines(10))
    assert pub.sync().received == 10
    ingest.close()  # the receiver goes away mid-stream
    died = time.monotonic()
    with pytest.raises(PublisherTimeout, match="no answer from a castream ingest|did not accept message"):
        while time.monotonic() - died < 10.0:
            pub.send(_lines(1))
    assert time.monotonic() - died < 3.0
    pub.close()


def test_aborted_publisher_closes_its_stream_so_the_id_can_be_reused(ingest_factory,
                                                                     tmp_path: Path) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    data = _lines(640)
    with pytest.raises(KeyboardInterrupt):
        with Publisher(ingest.endpoint, stream="again", chunk_lines=64) as pub:
            pub.start(**LINESCAN)
            pub.send(data)
            pub.sync()
            raise KeyboardInterrupt  # Ctrl-C in the acquisition loop
    assert ingest.wait_until_stopped(["again"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again.tif"), data)
    with Publisher(ingest.endpoint, stream="again") as pub:  # not refused as a restart
        pub.start(**LINESCAN)
        pub.send(data[:64])
        assert pub.stop().recorded == 64


def test_receiver_restarted_mid_stream_refuses_and_the_publisher_fails(
    ipc_endpoint: str, ingest_factory
) -> None:
    first = ingest_factory(ipc_endpoint)
    pub = Publisher(ipc_endpoint, stream="restarted", chunk_lines=64, ack_timeout_ms=5000)
    pub.start(**LINESCAN)
    pub.send(_lines(640))
    assert pub.sync().received == 640
    first.close()
    second = ingest_factory(ipc_endpoint)  # `serve` restarted on the same address
    with pytest.raises(PublisherRefused, match="unknown_stream"):
        for _ in range(200):  # the reconnected publisher's chunks are refused, not lost silently
            pub.send(_lines(64))
        pub.stop()
    assert second.error_totals().get("unknown_stream", 0) >= 1
    pub.close()
