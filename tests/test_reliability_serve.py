"""Messages that used to kill or hang ``serve`` (issue 11) leave it up, and a valid stream
beside them is recorded pixel-exact and analysed to the end."""

from __future__ import annotations

import threading
from pathlib import Path

import msgpack
import numpy as np
import pytest
import tifffile
import zmq

from acquisition.publisher import Publisher, PublisherRefused
from acquisition.simulate import LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from acquisition.wire import ChunkHeader, StopHeader, decode_reply, encode_message
from engine.pipeline import EngineConfig
from engine.runtime import background_server
from tests.reliability_faults import make_raw_files_read_only

TIMEOUT_S = 60.0
N_GAPS = 600


def _start(stream: str, **changes) -> list:
    fields = {"v": 2, "kind": "start", "stream": stream, "seq": 0, "mode": "linescan",
              "dtype": "uint16", "shape": [64], "pixel_um": 0.2, "dt_ms": 1.0, **changes}
    return [msgpack.packb(fields), b""]


def _refusal_code(sock: zmq.Socket) -> str:
    while True:
        assert sock.poll(10_000), "no reply from serve"
        reply = decode_reply(sock.recv())
        if reply["kind"] == "refused":
            return reply["code"]


@pytest.fixture(scope="module")
def valid_recording() -> np.ndarray:
    return simulate_linescan(LinescanParams(n_lines=3000, n_pixels=128), seed=21).data


def _stream_valid(endpoint: str, data: np.ndarray, between) -> dict:
    """Send ``data`` as stream "valid"; call ``between()`` half-way; return the report."""
    result: dict = {}

    def run() -> None:
        with Publisher(endpoint, stream="valid", chunk_lines=100) as pub:
            pub.start("linescan", "uint16", data.shape[1:], pixel_um=0.2, dt_ms=1.5)
            pub.send(data[:1500])
            pub.flush()
            between()
            pub.send(data[1500:])
            result["report"] = pub.stop()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(TIMEOUT_S)
    return result


def _faults(endpoint: str) -> dict[str, str]:
    """The kill/hang messages of issue 11, each from its own connection; refusal codes."""
    codes = {}
    with Publisher(endpoint, stream="empty") as pub:  # start + stop, no chunk
        pub.start("linescan", "uint16", (64,), pixel_um=0.2, dt_ms=1.5)
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(endpoint)
    raw.send_multipart(_start("tiny", pixel_um=5e-324))
    codes["tiny pixel_um"] = _refusal_code(raw)
    raw.send_multipart(_start("tiny-dt", dt_ms=5e-324))
    codes["tiny dt_ms"] = _refusal_code(raw)
    raw.send_multipart(_start("huge", mode="frames", shape=[65536, 65536]))
    codes["huge shape"] = _refusal_code(raw)
    raw.send_multipart(_start("jump"))
    raw.send_multipart(encode_message(ChunkHeader("jump", 1, 10**9, 1, 0),
                                      np.zeros((1, 64), np.uint16)))
    codes["first 1e9"] = _refusal_code(raw)
    raw.send_multipart(encode_message(StopHeader("valid", 999, 10)))
    codes["foreign stop"] = _refusal_code(raw)
    raw.close()
    big = np.random.default_rng(2).integers(0, 4000, (9, 2048, 2048), dtype=np.uint16)
    with Publisher(endpoint, stream="big", max_message_bytes=80 << 20) as pub:
        pub.start("frames", "uint16", (2048, 2048), pixel_um=0.2, dt_ms=5.0)
        pub.send(big)  # one 72 MiB message: recorded; too large to analyse
    return codes


def test_kill_and_hang_messages_leave_serve_up(valid_recording, tmp_path: Path,
                                                ipc_endpoint: str) -> None:
    config = EngineConfig(detector="classical")
    with background_server(endpoint=ipc_endpoint, store=tmp_path / "store.sqlite",
                           record_dir=tmp_path / "raw", config=config) as server:
        codes: dict = {}
        result = _stream_valid(ipc_endpoint, valid_recording,
                               lambda: codes.update(_faults(ipc_endpoint)))
        assert server.wait_finished(3, TIMEOUT_S)  # valid, empty, big (failed)
        assert server.error is None
        assert codes == {"tiny pixel_um": "calibration", "tiny dt_ms": "calibration",
                         "huge shape": "shape", "first 1e9": "gap_too_large",
                         "foreign stop": "foreign_stream"}
        assert result["report"].complete and result["report"].recorded == 3000
        assert "valid" in server.finished and "empty" in server.finished
        assert "big" in server.failed and "larger than analysis supports" in server.failed["big"]
        assert server.finished["valid"]["summary"] is not None
        assert server.ingest.wait_until_stopped(["valid", "big"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "raw" / "valid.tif"),
                                  valid_recording)
    assert tifffile.memmap(tmp_path / "raw" / "big.tif", mode="r").shape == (9, 2048, 2048)


def test_analysis_or_store_failure_fails_only_that_stream(valid_recording, tmp_path: Path,
                                                          ipc_endpoint: str,
                                                          monkeypatch) -> None:
    from engine.sinks.store import SqliteStore

    real_write = SqliteStore.write_events

    def full_disk(self, stream, events):
        if stream == "doomed":
            raise __import__("sqlite3").OperationalError("database or disk is full")
        return real_write(self, stream, events)

    monkeypatch.setattr(SqliteStore, "write_events", full_disk)
    config = EngineConfig(detector="classical")
    with background_server(endpoint=ipc_endpoint, store=tmp_path / "store.sqlite",
                           record_dir=tmp_path / "raw", config=config) as server:
        def doomed() -> None:
            with Publisher(ipc_endpoint, stream="doomed", chunk_lines=100) as pub:
                pub.start("linescan", "uint16", valid_recording.shape[1:], pixel_um=0.2,
                          dt_ms=1.5)
                pub.send(valid_recording)

        result = _stream_valid(ipc_endpoint, valid_recording, doomed)
        assert server.wait_finished(2, TIMEOUT_S) and server.error is None
        assert "database or disk is full" in server.failed["doomed"]
        assert result["report"].complete and "valid" in server.finished
        assert len(server.finished["valid"]["events"]) > 0
        assert server.ingest.wait_until_stopped(["doomed", "valid"], TIMEOUT_S)
    for name in ("doomed", "valid"):  # both recorded in full
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "raw" / f"{name}.tif"),
                                      valid_recording)


def test_unrecordable_stream_fails_its_publisher_not_serve(tmp_path: Path, ipc_endpoint: str,
                                                          monkeypatch) -> None:
    make_raw_files_read_only(monkeypatch, "ro.raw")
    with background_server(endpoint=ipc_endpoint, store=tmp_path / "store.sqlite",
                           record_dir=tmp_path / "raw",
                           config=EngineConfig(detector="classical")) as server:
        pub = Publisher(ipc_endpoint, stream="ro")
        with pytest.raises(PublisherRefused, match="record_failed"):
            pub.start("linescan", "uint16", (64,), pixel_um=0.2, dt_ms=1.5)
        pub.close()
        with Publisher(ipc_endpoint, stream="ok") as ok:
            ok.start("linescan", "uint16", (64,), pixel_um=0.2, dt_ms=1.5)
            ok.send(np.ones((500, 64), np.uint16))
        assert server.wait_finished(1, TIMEOUT_S) and server.error is None


def test_many_tiny_gaps_through_serve_stay_quiet(tmp_path: Path, ipc_endpoint: str,
                                                 caplog) -> None:
    config = EngineConfig(detector="classical")
    with background_server(endpoint=ipc_endpoint, store=tmp_path / "store.sqlite",
                           record_dir=tmp_path / "raw", config=config) as server:
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(ipc_endpoint)
        raw.send_multipart(_start("holes"))
        line = np.full((1, 64), 100, np.uint16)
        for k in range(N_GAPS):  # every other line missing (analysis costs ~6 ms per chunk)
            raw.send_multipart(encode_message(ChunkHeader("holes", k + 1, 2 * k, 1, 0), line))
        raw.send_multipart(encode_message(StopHeader("holes", N_GAPS + 1, 2 * N_GAPS)))
        assert server.wait_finished(1, TIMEOUT_S) and server.error is None
        raw.close()
    stats = server.ingest.stats()["holes"]
    assert stats.missing_frames == N_GAPS and stats.frames_recorded == N_GAPS
    gap_lines = [r for r in caplog.records if "missing before" in r.getMessage()]
    assert len(gap_lines) < 30


def test_raising_analyzer_fails_its_stream_and_the_other_loses_nothing(
        valid_recording, tmp_path: Path, ipc_endpoint: str, monkeypatch) -> None:
    """Issue 12 Must-show: a stream whose analyzer raises is marked failed (counter, store,
    statistics) while a second stream in the same serve loses nothing and keeps producing
    events after the failure."""
    from engine.analyzer import StreamAnalyzer
    from engine.pipeline import analyze_array
    from engine.sinks.store import SqliteStore

    real_push = StreamAnalyzer.push

    def push(self, first, frames, t_arrival=None):
        if self.info.stream == "doomed" and first + len(frames) > 300:  # queued chunks join
            raise RuntimeError("analyzer bug")
        return real_push(self, first, frames, t_arrival)

    monkeypatch.setattr(StreamAnalyzer, "push", push)
    config = EngineConfig(detector="classical")
    store_path = tmp_path / "store.sqlite"
    with background_server(endpoint=ipc_endpoint, store=store_path,
                           record_dir=tmp_path / "raw", config=config,
                           workers=2) as server:  # the post-processing pool, on any machine
        def doomed() -> None:  # while "valid" is half-way
            with Publisher(ipc_endpoint, stream="doomed", chunk_lines=100) as pub:
                pub.start("linescan", "uint16", valid_recording.shape[1:], pixel_um=0.2,
                          dt_ms=1.5)
                pub.send(valid_recording)
            assert server.wait_finished(1, TIMEOUT_S)

        result = _stream_valid(ipc_endpoint, valid_recording, doomed)
        assert server.wait_finished(2, TIMEOUT_S) and server.error is None
        assert result["report"].complete
        assert server.failed == {"doomed": "RuntimeError: analyzer bug"} and server.n_failed == 1
        assert server.ingest.wait_until_stopped(["doomed", "valid"], TIMEOUT_S)
    store = SqliteStore(store_path, readonly=True)
    assert store.latest_stats("doomed")["failed"] == "RuntimeError: analyzer bug"
    assert {s["stream"]: s["stopped_s"] is not None for s in store.list_streams()} == {
        "doomed": True, "valid": True}
    alone = analyze_array(valid_recording, StreamKind.LINESCAN, 0.2, 1.5, detector="classical")
    stored = store.events("valid")
    assert [e["event_id"] for e in stored] == [e.event_id for e in alone.events]
    assert [e["t_peak_ms"] for e in stored] == [e.t_peak_ms for e in alone.events]
    assert any(e["t_start_ms"] > 1500 * 1.5 for e in stored), "events after the failure"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "raw" / "doomed.tif"),
                                  valid_recording)
    store.close()
