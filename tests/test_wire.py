"""The wire schema: round trips and one specific error code per kind of bad input."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from acquisition.stream_kind import StreamKind
from acquisition.wire import (
    ChunkHeader,
    StartHeader,
    StopHeader,
    WireError,
    decode_header,
    decode_payload,
    encode_header,
    encode_message,
)

START = StartHeader(stream="cell-1", mode="frames", dtype="uint16", shape=(4, 8), pixel_um=0.2,
                    dt_ms=6.8, blank=100.0, cell="c1", metadata={"objective": "63x"})


def _fields(**changes) -> bytes:
    fields = msgpack.unpackb(encode_header(START))
    fields.update(changes)
    return msgpack.packb({k: v for k, v in fields.items() if v is not ...})


@pytest.mark.parametrize("header", [
    START,
    StartHeader(stream="ls", mode="linescan", dtype="float32", shape=(512,), pixel_um=0.1,
                dt_ms=1.5),
    ChunkHeader(stream="cell-1", seq=3, first=128, n=64, t_ns=1_700_000_000_000_000_000),
    StopHeader(stream="cell-1", seq=9, n_total=500),
    StopHeader(stream="cell-1", seq=9),
])
def test_header_round_trip(header) -> None:
    assert decode_header(encode_header(header)) == header


def test_start_header_properties() -> None:
    assert START.stream_kind is StreamKind.MOVIE and START.item_bytes == 4 * 8 * 2
    assert (StartHeader("s", "linescan", "uint8", (512,), 1.0, 1.0).stream_kind
            is StreamKind.LINESCAN)


def test_payload_round_trip_without_copy() -> None:
    data = np.arange(3 * 4 * 8, dtype=np.uint16).reshape(3, 4, 8)
    chunk = ChunkHeader(stream="cell-1", seq=1, first=0, n=3, t_ns=0)
    header_bytes, payload = encode_message(chunk, data)
    assert decode_header(header_bytes) == chunk
    decoded = decode_payload(chunk, START, payload)
    np.testing.assert_array_equal(decoded, data)
    assert np.shares_memory(decoded, data)


def test_encode_rejects_non_contiguous_payload() -> None:
    chunk = ChunkHeader(stream="cell-1", seq=1, first=0, n=2, t_ns=0)
    with pytest.raises(ValueError, match="C-contiguous"):
        encode_message(chunk, np.zeros((2, 8, 4), np.uint16).transpose(0, 2, 1))


@pytest.mark.parametrize("raw, code", [
    (b"\xc1garbage", "bad_header"),
    (msgpack.packb([1, 2, 3]), "bad_header"),
    (b"\x80" + b"x" * (70 * 1024), "oversize"),
    (_fields(v=99), "unknown_version"),
    (_fields(kind="hello"), "bad_header"),
    (_fields(seq=-1), "bad_header"),
    (_fields(stream=""), "bad_header"),
    (_fields(dtype="float64"), "dtype"),
    (_fields(shape=[512]), "shape"),
    (_fields(shape=[0, 8]), "shape"),
    (_fields(mode="volume"), "bad_header"),
    (_fields(pixel_um=-1.0), "calibration"),
    (_fields(pixel_um=5e-324), "calibration"),
    (_fields(dt_ms=5e-324), "calibration"),
    (_fields(dt_ms=1e9), "calibration"),
    (_fields(blank=float("nan")), "bad_header"),
    (_fields(dt_ms="fast"), "bad_header"),
    (_fields(dt_ms=...), "bad_header"),
    (_fields(blank="dark"), "bad_header"),
])
def test_bad_headers_get_specific_codes(raw: bytes, code: str) -> None:
    with pytest.raises(WireError) as info:
        decode_header(raw)
    assert info.value.code == code


def test_wire_error_names_the_stream_when_it_can() -> None:
    with pytest.raises(WireError) as info:
        decode_header(_fields(dtype="complex64"))
    assert info.value.stream == "cell-1" and "complex64" in str(info.value)


@pytest.mark.parametrize("n_bytes, code", [
    (3 * 64 - 1, "truncated_payload"),
    (0, "truncated_payload"),
    (3 * 64 + 2, "shape"),
])
def test_payload_size_mismatch(n_bytes: int, code: str) -> None:
    chunk = ChunkHeader(stream="cell-1", seq=1, first=0, n=3, t_ns=0)
    with pytest.raises(WireError) as info:
        decode_payload(chunk, START, b"\0" * n_bytes)
    assert info.value.code == code


def test_payload_oversize() -> None:
    chunk = ChunkHeader(stream="cell-1", seq=1, first=0, n=100, t_ns=0)
    with pytest.raises(WireError) as info:
        decode_payload(chunk, START, b"\0" * 6400, max_payload_bytes=1000)
    assert info.value.code == "oversize"
