"""Publisher -> ingest: chunking, validation, sequence accounting, queue policies."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

from acquisition.ingest import ChunkReceived, IngestOverflow, StreamStarted, StreamStopped
from acquisition.publisher import Publisher, PublisherError, PublisherTimeout
from acquisition.wire import ChunkHeader, StartHeader, StopHeader, encode_message

TIMEOUT_S = 10.0
LINESCAN = dict(mode="linescan", dtype="uint16", shape=(32,), pixel_um=0.2, dt_ms=1.5)


def _lines(n: int, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (n, width), dtype=np.uint16)


class RawSender:
    """Hand-made messages for one stream, for sequence accounting tests."""

    def __init__(self, endpoint: str, stream: str = "raw", width: int = 4):
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.connect(endpoint)
        self.stream, self.width, self.seq = stream, width, 0
        self.socket.send_multipart(encode_message(StartHeader(
            stream=stream, mode="linescan", dtype="uint16", shape=(width,), pixel_um=1.0,
            dt_ms=1.0)))

    def chunk(self, first: int, n: int) -> None:
        self.seq += 1
        data = np.full((n, self.width), first, dtype=np.uint16) + np.arange(n, dtype=np.uint16)[:, None]
        header = ChunkHeader(stream=self.stream, seq=self.seq, first=first, n=n, t_ns=0)
        self.socket.send_multipart(encode_message(header, data))

    def stop(self, n_total: int | None) -> None:
        self.seq += 1
        self.socket.send_multipart(encode_message(StopHeader(self.stream, self.seq, n_total)))
        self.socket.close(linger=-1)


def test_linescan_lines_are_chunked_and_flushed(ingest_factory, drain, chunks_of) -> None:
    ingest = ingest_factory(queue_size=100)
    data = _lines(1000)
    with Publisher(ingest.endpoint, stream="ls", chunk_lines=64) as pub:
        pub.start(**LINESCAN)
        for start in range(0, 1000, 37):  # odd block sizes, single lines too
            pub.send(data[start : start + 37])
        pub.send(data[999])  # one (X,) line more
    assert ingest.wait_until_stopped(["ls"], TIMEOUT_S)
    items = drain(ingest)["ls"]
    assert isinstance(items[0], StreamStarted) and isinstance(items[-1], StreamStopped)
    chunks = [i for i in items if isinstance(i, ChunkReceived)]
    assert [c.header.n for c in chunks] == [64] * 15 + [41]
    assert [c.header.first for c in chunks] == list(range(0, 1001, 64))
    np.testing.assert_array_equal(chunks_of(items), np.vstack([data, data[999:]]))
    stats = items[-1].stats
    assert (stats.frames_received, stats.missing_frames, stats.errors) == (1001, 0, 0)
    assert stats.n_total_declared == 1001 and stats.messages == 18


def test_movie_frames_and_timestamps(ingest_factory, drain, chunks_of) -> None:
    ingest = ingest_factory()
    frames = np.random.default_rng(1).random((10, 8, 16), dtype=np.float32)
    with Publisher(ingest.endpoint, stream="mv") as pub:
        pub.start("frames", np.float32, (8, 16), pixel_um=0.2, dt_ms=6.8, blank=90, cell="c7")
        pub.send(frames[:4], t_ns=1_000_000_000)  # one message of 4 frames
        for frame in frames[4:]:
            pub.send(frame)
    assert ingest.wait_until_stopped(["mv"], TIMEOUT_S)
    items = drain(ingest)["mv"]
    assert items[0].header.blank == 90.0 and items[0].header.cell == "c7"
    chunks = [i for i in items if isinstance(i, ChunkReceived)]
    assert [c.header.n for c in chunks] == [4, 1, 1, 1, 1, 1, 1]
    assert chunks[0].header.t_ns == 1_000_000_000
    np.testing.assert_array_equal(chunks_of(items), frames)
    # zero-copy: a read-only view of the received message (the recorder writes from it too)
    assert not chunks[0].data.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        chunks[0].data[:] = 0


def test_publisher_validates_against_start(ingest_factory) -> None:
    ingest = ingest_factory()
    with Publisher(ingest.endpoint, stream="v") as pub:
        with pytest.raises(PublisherError, match="not started"):
            pub.send(np.zeros(32, np.uint16))
        pub.start(**LINESCAN)
        with pytest.raises(PublisherError, match="dtype uint16, got float64"):
            pub.send(np.zeros((4, 32)))
        with pytest.raises(PublisherError, match=r"shape \[32\]"):
            pub.send(np.zeros((4, 31), np.uint16))
        with pytest.raises(PublisherError, match="already started"):
            pub.start(**LINESCAN)
    assert ingest.wait_until_stopped(["v"], TIMEOUT_S)


def test_publisher_rejects_invalid_start_header() -> None:
    from acquisition.wire import WireError

    with Publisher("tcp://127.0.0.1:1", stream="x", send_timeout_ms=0) as pub:
        with pytest.raises(WireError) as info:
            pub.start("frames", "uint16", (512,), pixel_um=0.2, dt_ms=1.0)
        assert info.value.code == "shape"


def test_publisher_timeout_is_explicit() -> None:
    """A receiver that takes messages but never acknowledges them: the publisher says so."""
    context = zmq.Context()
    silent = context.socket(zmq.ROUTER)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    pub = Publisher(f"tcp://127.0.0.1:{port}", stream="t", context=context, send_timeout_ms=50,
                    ack_timeout_ms=300)
    with pytest.raises(PublisherTimeout, match="no answer from a castream ingest"):
        pub.start("frames", "uint16", (256, 512), pixel_um=1, dt_ms=1)
    pub.close(linger_ms=0)
    silent.close(linger=0)
    context.term()


def test_sequence_gap_duplicate_out_of_order(ingest_factory, drain) -> None:
    ingest = ingest_factory(queue_size=100)
    raw = RawSender(ingest.endpoint)
    raw.chunk(0, 10)
    raw.chunk(20, 10)  # gap [10, 20)
    raw.chunk(20, 10)  # duplicate: dropped, counted
    raw.chunk(40, 5)  # gap [30, 40)
    raw.chunk(10, 5)  # late: fills [10, 15)
    raw.stop(n_total=50)  # trailing gap [45, 50)
    assert ingest.wait_until_stopped(["raw"], TIMEOUT_S)
    stats = ingest.stats()["raw"]
    assert stats.gap_ranges == [[15, 20], [30, 40], [45, 50]]
    assert stats.missing_frames == 20
    assert (stats.duplicates, stats.out_of_order, stats.frames_received) == (10, 1, 30)
    chunks = [i for i in drain(ingest)["raw"] if isinstance(i, ChunkReceived)]
    assert [c.header.first for c in chunks] == [0, 20, 40, 10]  # duplicate not forwarded


def test_partial_overlap_counts_only_new_items(ingest_factory) -> None:
    ingest = ingest_factory()
    raw = RawSender(ingest.endpoint, stream="overlap")
    raw.chunk(0, 10)
    raw.chunk(5, 10)  # 5 duplicates, 5 new
    raw.stop(n_total=15)
    assert ingest.wait_until_stopped(["overlap"], TIMEOUT_S)
    stats = ingest.stats()["overlap"]
    assert (stats.frames_received, stats.duplicates, stats.missing_frames) == (15, 5, 0)


def test_restart_of_running_stream_is_an_error(ingest_factory) -> None:
    ingest = ingest_factory()
    raw = RawSender(ingest.endpoint, stream="again")
    raw.chunk(0, 3)
    raw.socket.send_multipart(encode_message(StartHeader(
        stream="again", mode="frames", dtype="uint8", shape=(2, 2), pixel_um=1.0, dt_ms=1.0)))
    raw.chunk(3, 3)  # still the original linescan geometry
    raw.stop(n_total=6)
    assert ingest.wait_until_stopped(["again"], TIMEOUT_S)
    stats = ingest.stats()["again"]
    assert stats.errors_by_code == {"restart": 1}
    assert (stats.frames_received, stats.missing_frames) == (6, 0)


def test_stream_can_run_again_after_stop(ingest_factory, drain) -> None:
    ingest = ingest_factory()
    for run in range(2):
        with Publisher(ingest.endpoint, stream="twice") as pub:
            pub.start(**LINESCAN)
            pub.send(_lines(10 + run))
        assert ingest.wait_for(lambda s, n=10 + run: "twice" in s and s["twice"].state ==
                               "stopped" and s["twice"].frames_received == n, TIMEOUT_S)
    stopped = [i for i in drain(ingest)["twice"] if isinstance(i, StreamStopped)]
    assert [s.stats.frames_received for s in stopped] == [10, 11]


def test_policy_fail_raises_in_consumer_and_counts(ingest_factory) -> None:
    ingest = ingest_factory(queue_size=2, policy="fail")
    with Publisher(ingest.endpoint, stream="full", chunk_lines=1) as pub:
        pub.start(**LINESCAN)
        pub.send(_lines(5))
    assert ingest.wait_until_stopped(["full"], TIMEOUT_S)
    stats = ingest.stats()["full"]
    assert stats.errors_by_code["queue_full"] == 5  # 4 chunks and the stop did not fit
    assert stats.frames_received == 5 and stats.queue_depth == 2
    with pytest.raises(IngestOverflow, match="policy=fail"):
        ingest.get(timeout_s=1)
    assert isinstance(ingest.get(timeout_s=1), StreamStarted)


def test_policy_block_lags_and_catches_up(ingest_factory, drain, chunks_of) -> None:
    ingest = ingest_factory(queue_size=2, policy="block")
    data = _lines(64 * 20)

    def publish() -> None:  # stop() waits for the confirmation, which waits for the queue
        with Publisher(ingest.endpoint, stream="slow") as pub:
            pub.start(**LINESCAN)
            pub.send(data)  # 20 chunks into a queue of 2: the ingest blocks, nothing dropped

    sender = threading.Thread(target=publish)
    sender.start()
    assert ingest.wait_for(lambda s: "slow" in s and s["slow"].queue_depth >= 2, TIMEOUT_S)
    assert ingest.queue_depth() == 2
    items = []
    while not any(isinstance(i, StreamStopped) for i in items):
        item = ingest.get(timeout_s=TIMEOUT_S)
        assert item is not None
        items.append(item)
    sender.join(TIMEOUT_S)
    np.testing.assert_array_equal(chunks_of(items), data)
    assert ingest.stats()["slow"].errors == 0


def test_invalid_policy() -> None:
    from acquisition.ingest import Ingest

    with pytest.raises(ValueError, match="policy"):
        Ingest("tcp://127.0.0.1:0", policy="drop")


def test_two_streams_over_ipc(ipc_endpoint, ingest_factory, drain, chunks_of) -> None:
    ingest = ingest_factory(ipc_endpoint)
    data = {name: _lines(300, seed=i) for i, name in enumerate(("a", "b"))}
    pubs = {name: Publisher(ipc_endpoint, stream=name) for name in data}
    for pub in pubs.values():
        pub.start(**LINESCAN)
    for start in range(0, 300, 50):
        for name, pub in pubs.items():
            pub.send(data[name][start : start + 50])
    for pub in pubs.values():
        pub.stop()
        pub.close()
    assert ingest.wait_until_stopped(2, TIMEOUT_S)
    items = drain(ingest)
    for name in data:
        np.testing.assert_array_equal(chunks_of(items[name]), data[name])
