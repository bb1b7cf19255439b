"""A seeded, bounded fuzzer against the ingest (issue 11): thousands of malformed and hostile
messages interleaved with a valid stream, which loses nothing; every bad message is refused
with a specific code; nothing is written outside the record directory; counters stay bounded."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import numpy as np
import tifffile
import zmq

from acquisition.ingest_counters import MAX_TRACKED_STREAMS
from acquisition.publisher import Publisher
from acquisition.wire import ChunkHeader, encode_header

N_FUZZ = 2400
MAX_PAYLOAD = 1 << 20
TIMEOUT_S = 30.0
SPECIFIC_CODES = {"bad_header", "bad_frames", "unknown_version", "calibration", "dtype",
                  "shape", "oversize", "truncated_payload", "unknown_stream", "restart",
                  "gap_too_large", "sequence", "foreign_stream", "too_many_streams"}


def _start_fields(rng: np.random.Generator, stream: str) -> dict:
    return {"v": 2, "kind": "start", "stream": stream, "seq": 0, "mode": "linescan",
            "dtype": "uint16", "shape": [int(rng.integers(1, 64))], "pixel_um": 0.2,
            "dt_ms": 1.0}


def _weird_value(rng: np.random.Generator):
    choices = [None, True, -1, 0, 2**63 - 1, -(2**63), 10**30 % 2**64, float("nan"),
               float("inf"), 5e-324, "x" * int(rng.integers(0, 300)), b"\x00\xff", [], {},
               [65536, 65536], [-1], "../../etc/passwd", "float64"]
    return choices[int(rng.integers(len(choices)))]


def _fuzz_message(rng: np.random.Generator, k: int) -> list[bytes]:
    kind = int(rng.integers(10))
    stream = ["fz", "../../escape", "a/b\\c", "x" * 10_000, f"name-{k}", "valid"][
        int(rng.integers(6))]
    if kind == 0:  # random bytes, random part count
        return [rng.bytes(int(rng.integers(0, 200))) for _ in range(int(rng.integers(1, 4)))]
    if kind == 1:  # msgpack of every type
        return [msgpack.packb(_weird_value(rng)), b""]
    if kind == 2:  # a start with one field made weird
        fields = _start_fields(rng, stream)
        fields[list(fields)[int(rng.integers(len(fields)))]] = _weird_value(rng)
        return [msgpack.packb(fields), b""]
    if kind == 3:  # a good start for a fuzz stream (may be a second start, other shape)
        return [msgpack.packb(_start_fields(rng, f"fz-{int(rng.integers(8))}")), b""]
    if kind in (4, 5):  # chunks: huge/negative first/n/seq, truncated/oversize payloads
        first = int(rng.choice([0, 1, -5, 10**9, 2**62, int(rng.integers(0, 500))]))
        n = int(rng.choice([1, 0, -1, 2**40, int(rng.integers(1, 20))]))
        fields = {"v": 2, "kind": "chunk", "stream": f"fz-{int(rng.integers(8))}",
                  "seq": int(rng.integers(0, 2**40)), "first": first, "n": n, "t_ns": 0}
        size = int(rng.choice([0, 7, 64, 128 * 16, MAX_PAYLOAD + 8]))
        return [msgpack.packb(fields), rng.bytes(size) if size < 4096 else bytes(size)]
    if kind == 6:  # NaN float payload into a float stream
        return [encode_header(ChunkHeader("fz-f", k, 0, 2, 0)), np.full(8, np.nan, np.float32)
                .tobytes()]
    if kind == 7:  # stop for the valid stream or an unknown one (foreign)
        return [msgpack.packb({"v": 2, "kind": "stop", "stream": stream, "seq": 1,
                               "n_total": int(rng.integers(0, 10**6))}), b""]
    if kind == 8:  # unknown version / kind
        return [msgpack.packb({"v": int(rng.integers(3, 99)), "kind": "start",
                               "stream": stream, "seq": 0}), b""]
    return [msgpack.packb({"v": 2, "kind": "hello", "stream": stream, "seq": 0}), b""]


def test_fuzzer_refuses_bad_input_and_valid_stream_loses_nothing(ingest_factory,
                                                                 tmp_path: Path) -> None:
    record_dir = tmp_path / "raw"
    ingest = ingest_factory(record_dir=record_dir, max_payload_bytes=MAX_PAYLOAD,
                            queue_size=100_000, max_streams=16)
    rng = np.random.default_rng(11)
    good = rng.integers(0, 4096, (64 * 60, 32), dtype=np.uint16)
    fuzz = zmq.Context.instance().socket(zmq.DEALER)
    fuzz.setsockopt(zmq.LINGER, 0)
    fuzz.connect(ingest.endpoint)
    files_before = len(os.listdir(f"/proc/{os.getpid()}/fd"))
    with Publisher(ingest.endpoint, stream="valid", chunk_lines=64) as pub:
        pub.start("linescan", "uint16", (32,), pixel_um=0.2, dt_ms=1.0)
        per_block = N_FUZZ // 60
        for index, block in enumerate(np.split(good, 60)):
            for k in range(index * per_block, (index + 1) * per_block):
                fuzz.send_multipart(_fuzz_message(rng, k))
            pub.send(block)
        report = pub.stop()
    assert report.complete and report.recorded == len(good)
    replies = 0
    while fuzz.poll(1000):  # every fuzz message is answered; drained once the ingest is quiet
        fuzz.recv()
        replies += 1
    assert ingest.wait_until_stopped(["valid"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.imread(record_dir / "valid.tif"), good)
    valid = ingest.stats()["valid"]
    assert (valid.frames_received, valid.frames_recorded, valid.missing_frames) == (
        len(good), len(good), 0)
    totals = ingest.error_totals()
    assert set(totals) <= SPECIFIC_CODES, set(totals) - SPECIFIC_CODES  # no "internal"
    assert sum(totals.values()) > N_FUZZ // 2 and replies >= sum(totals.values())
    assert all(p.parent == record_dir for p in tmp_path.rglob("*") if p.is_file())
    assert len(ingest.stats()) <= MAX_TRACKED_STREAMS
    assert len(os.listdir(f"/proc/{os.getpid()}/fd")) <= files_before + 40
    fuzz.close()
