"""Bad input gets a specific error code, counted per stream; a valid stream beside it
continues and loses nothing (DESIGN.md reliability rules)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest
import tifffile
import zmq

from acquisition.ingest_counters import UNATTRIBUTED
from acquisition.publisher import Publisher
from acquisition.replay import replay_file
from acquisition.tiff_source import TiffSourceError
from acquisition.wire import ChunkHeader, encode_header, encode_message

TIMEOUT_S = 10.0
MAX_PAYLOAD = 1 << 20


def _start(stream: str, **changes) -> list:
    fields = {"v": 1, "kind": "start", "stream": stream, "seq": 0, "mode": "linescan",
              "dtype": "uint16", "shape": [16], "pixel_um": 0.2, "dt_ms": 1.0, **changes}
    return [msgpack.packb(fields), b""]


def _chunk(stream: str, first: int, n: int, payload: bytes) -> list:
    return [encode_header(ChunkHeader(stream=stream, seq=first + 1, first=first, n=n, t_ns=0)),
            payload]


BAD_MESSAGES = {
    # stream id -> (messages, expected error code)
    "truncated": ([_start("truncated"), _chunk("truncated", 0, 4, b"\0" * (4 * 32 - 6))],
                  "truncated_payload"),
    "wrongdtype": ([_start("wrongdtype", dtype="float64")], "dtype"),
    "badshape": ([_start("badshape"), _chunk("badshape", 0, 4, b"\0" * (4 * 32 + 64))],
                 "shape"),
    "newschema": ([_start("newschema", v=99)], "unknown_version"),
    "huge": ([_start("huge"), _chunk("huge", 0, 40_000, b"\0" * (40_000 * 32))], "oversize"),
    "ghost": ([_chunk("ghost", 0, 4, b"\0" * 128)], "unknown_stream"),
    "threeparts": ([_start("threeparts") + [b"extra"]], "bad_frames"),
}


def test_bad_messages_are_counted_and_valid_stream_loses_nothing(
    ingest_factory, drain, chunks_of, tmp_path: Path
) -> None:
    ingest = ingest_factory(record_dir=tmp_path, queue_size=10_000, max_payload_bytes=MAX_PAYLOAD)
    good = np.random.default_rng(0).integers(0, 4096, (64 * 40, 16), dtype=np.uint16)
    bad = zmq.Context.instance().socket(zmq.DEALER)
    bad.connect(ingest.endpoint)
    with Publisher(ingest.endpoint, stream="good", chunk_lines=64) as pub:
        pub.start("linescan", "uint16", (16,), pixel_um=0.2, dt_ms=1.0)
        for index, block in enumerate(np.split(good, 40)):
            pub.send(block)
            if index < len(BAD_MESSAGES):  # interleave the bad input with the good stream
                for message in list(BAD_MESSAGES.values())[index][0]:
                    bad.send_multipart(message)
            elif index == len(BAD_MESSAGES):
                bad.send(b"\x00\xffnot msgpack at all")  # garbage, single frame
                bad.send_multipart([b"\xc1", b"more garbage"])
    bad.close(linger=-1)
    assert ingest.wait_until_stopped(["good"], TIMEOUT_S)
    assert ingest.wait_for(lambda s: UNATTRIBUTED in s and s[UNATTRIBUTED].errors == 2, TIMEOUT_S)
    assert ingest.wait_for(lambda s: all(n in s for n in BAD_MESSAGES), TIMEOUT_S)

    stats = ingest.stats()
    for stream, (_, code) in BAD_MESSAGES.items():
        assert stats[stream].errors_by_code == {code: 1}, stream
    assert stats[UNATTRIBUTED].errors_by_code == {"bad_header": 2}
    assert stats["good"].errors == 0
    assert (stats["good"].frames_received, stats["good"].frames_recorded) == (2560, 2560)
    assert stats["good"].missing_frames == 0
    np.testing.assert_array_equal(chunks_of(drain(ingest)["good"]), good)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "good.tif"), good)
    assert stats["truncated"].state == "running"  # its start was fine; only the chunk was bad


def test_chunk_far_beyond_stream_limit_is_a_sequence_error(ingest_factory) -> None:
    ingest = ingest_factory(max_stream_bytes=1 << 20)
    push = zmq.Context.instance().socket(zmq.DEALER)
    push.connect(ingest.endpoint)
    push.send_multipart(_start("jump"))
    push.send_multipart(_chunk("jump", 10**9, 1, b"\0" * 32))
    push.close(linger=-1)
    assert ingest.wait_for(lambda s: "jump" in s and s["jump"].errors == 1, TIMEOUT_S)
    assert ingest.stats()["jump"].errors_by_code == {"sequence": 1}


def test_payload_on_start_message_is_rejected(ingest_factory) -> None:
    ingest = ingest_factory()
    push = zmq.Context.instance().socket(zmq.DEALER)
    push.connect(ingest.endpoint)
    push.send_multipart([_start("loaded")[0], b"unexpected"])
    push.close(linger=-1)
    assert ingest.wait_for(lambda s: "loaded" in s and s["loaded"].errors == 1, TIMEOUT_S)
    assert ingest.stats()["loaded"].errors_by_code == {"bad_frames": 1}


@pytest.mark.parametrize("content, code", [
    (b"this is a text file, not an image\n", "not_tiff"),
    (b"II*\x00" + b"\xff" * 64, "corrupt_tiff"),
    (None, "corrupt_tiff"),  # a real TIFF cut in half
])
def test_replay_rejects_bad_files_before_sending(
    ingest_factory, tmp_path: Path, content: bytes | None, code: str
) -> None:
    ingest = ingest_factory()
    path = tmp_path / "bad.tif"
    if content is None:
        tifffile.imwrite(path, np.zeros((20, 32, 32), np.uint16), compression="zlib")
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(TiffSourceError) as info:
        replay_file(path, ingest.endpoint, pixel_um=0.2, dt_ms=1.0, progress=False)
    assert info.value.code == code and str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="not found"):
        replay_file(tmp_path / "missing.tif", ingest.endpoint, progress=False)
    # the ingest is still serving
    with Publisher(ingest.endpoint, stream="after") as pub:
        pub.start("frames", "uint8", (2, 2), pixel_um=1, dt_ms=1)
        pub.send(np.ones((3, 2, 2), np.uint8))
    assert ingest.wait_until_stopped(["after"], TIMEOUT_S)
    assert set(ingest.stats()) == {"after"}


def test_corrupt_raw_message_mid_stream_keeps_stream_alive(ingest_factory, drain) -> None:
    ingest = ingest_factory()
    push = zmq.Context.instance().socket(zmq.DEALER)
    push.connect(ingest.endpoint)
    push.send_multipart(_start("mid"))
    lines = np.arange(8 * 16, dtype=np.uint16).reshape(8, 16)
    push.send_multipart(encode_message(ChunkHeader("mid", 1, 0, 4, 0), lines[:4]))
    push.send_multipart(_chunk("mid", 4, 4, b"\0" * 10))  # truncated: rejected
    push.send_multipart(encode_message(ChunkHeader("mid", 3, 4, 4, 0), lines[4:]))  # resent
    push.send_multipart([msgpack.packb({"v": 1, "kind": "stop", "stream": "mid", "seq": 4,
                                        "n_total": 8}), b""])
    push.close(linger=-1)
    assert ingest.wait_until_stopped(["mid"], TIMEOUT_S)
    stats = ingest.stats()["mid"]
    assert stats.errors_by_code == {"truncated_payload": 1}
    assert (stats.frames_received, stats.missing_frames) == (8, 0)
