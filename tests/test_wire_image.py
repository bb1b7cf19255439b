"""Wire version 3: image streams (a structure image in one chunk) and the ``field`` of a stream;
older publishers keep working."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import tifffile
import zmq

from acquisition.ingest import ChunkReceived, StreamStarted
from acquisition.publisher import Publisher, PublisherError, PublisherRefused
from acquisition.stream_kind import StreamKind
from acquisition.wire import (
    IMAGE_DT_MS,
    SCHEMA_VERSION,
    ChunkHeader,
    StartHeader,
    WireError,
    decode_header,
    decode_reply,
    encode_header,
    encode_message,
)

IMAGE = StartHeader(stream="actinin", mode="image", dtype="uint16", shape=(96, 128),
                    pixel_um=0.15, dt_ms=IMAGE_DT_MS, field="F1")


def _image_fields(**changes) -> bytes:
    fields = msgpack.unpackb(encode_header(IMAGE))
    fields.update(changes)
    return msgpack.packb({k: v for k, v in fields.items() if v is not ...})


def test_version_3_image_and_field_round_trip() -> None:
    assert SCHEMA_VERSION == 3
    labels = StartHeader("rois", "image", "uint16", (96, 128), 0.15, IMAGE_DT_MS, field="F1",
                         content="labels")
    ca = StartHeader("calcium", "frames", "uint16", (64, 64), 0.2, 6.8, field="F1")
    for header in (IMAGE, labels, ca):
        assert decode_header(encode_header(header)) == header
    assert IMAGE.stream_kind is StreamKind.IMAGE and "field" not in msgpack.unpackb(
        encode_header(StartHeader("s", "linescan", "uint16", (8,), 0.2, 1.0)))


def test_image_dt_ms_is_optional() -> None:
    assert decode_header(_image_fields(dt_ms=...)).dt_ms == IMAGE_DT_MS
    assert decode_header(_image_fields(dt_ms=...)).field == "F1"


@pytest.mark.parametrize("raw, code", [
    (_image_fields(shape=[512]), "shape"),  # a 1-D image
    (_image_fields(shape=[4, 96, 128]), "shape"),  # a z-stack sends its planes as n
    (_image_fields(v=2), "bad_header"),  # mode image needs version 3
    (_image_fields(field=""), "bad_header"),
    (_image_fields(field=7), "bad_header"),
    (_image_fields(content="movie"), "bad_header"),
    (_image_fields(content="labels", dtype="float32"), "dtype"),
    (_image_fields(mode="frames", content="labels", dt_ms=1.0), "bad_header"),
])
def test_bad_image_headers_get_specific_codes(raw: bytes, code: str) -> None:
    with pytest.raises(WireError) as error:
        decode_header(raw)
    assert error.value.code == code and error.value.stream == "actinin"


def test_old_versions_still_decode_and_ignore_new_fields() -> None:
    old = {"v": 2, "kind": "start", "stream": "old", "seq": 0, "mode": "linescan",
           "dtype": "uint16", "shape": [64], "pixel_um": 0.2, "dt_ms": 1.0,
           "metadata": {"field": "F1"}, "field": "ignored-before-v3"}
    header = decode_header(msgpack.packb(old))
    assert header.v == 2 and header.field is None and header.metadata == {"field": "F1"}
    assert decode_header(msgpack.packb({**old, "v": 1})).v == 1


@pytest.mark.parametrize("shape", [(96, 128), (3, 96, 128)])
def test_publisher_sends_an_image_in_one_acknowledged_chunk(ingest_factory, drain, tmp_path,
                                                            shape) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    image = np.random.default_rng(0).integers(0, 4000, shape, dtype=np.uint16)
    with Publisher(ingest.endpoint, stream="actinin") as pub:
        header = pub.start("image", "uint16", shape, pixel_um=0.15, field="F1")
        pub.send(image)
        with pytest.raises(PublisherError, match="already sent its image"):
            pub.send(image)
        report = pub.sync()
    assert header.shape == (96, 128) and header.field == "F1"
    planes = 1 if len(shape) == 2 else shape[0]
    assert report.recorded == planes and report.received == planes
    items = drain(ingest)["actinin"]
    assert isinstance(items[0], StreamStarted) and items[0].header.mode == "image"
    chunk = next(i for i in items if isinstance(i, ChunkReceived))
    np.testing.assert_array_equal(chunk.data.reshape(shape), image)
    assert ingest.wait_until_stopped(["actinin"], 10)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "actinin.tif").reshape(shape),
                                  image)


def test_publisher_checks_the_image_before_sending(ingest_factory) -> None:
    ingest = ingest_factory()
    with Publisher(ingest.endpoint, stream="a") as pub:
        pub.start("image", "uint16", (40, 50), pixel_um=0.15)
        with pytest.raises(PublisherError, match="declared uint16"):
            pub.send(np.zeros((40, 51), np.uint16))
        pub.send(np.zeros((40, 50), np.uint16))
    with Publisher(ingest.endpoint, stream="b") as pub, pytest.raises(PublisherError,
                                                                     match="dt_ms"):
        pub.start("frames", "uint16", (40, 50), pixel_um=0.15)
    with Publisher(ingest.endpoint, stream="c") as pub, pytest.raises(WireError, match="1-D"):
        pub.start("image", "uint16", (512,), pixel_um=0.15)
    with pytest.raises(PublisherRefused) as refused, \
            Publisher(ingest.endpoint, stream="d") as pub:
        pub.start("image", "uint16", (2, 40, 50), pixel_um=0.15, field="F", content="labels")
        pub.send(np.zeros((2, 40, 50), np.uint16))
    assert refused.value.code == "shape"  # a labels image is one plane


def test_nan_image_and_second_chunk_are_refused_and_counted(ingest_factory, tmp_path) -> None:
    ingest = ingest_factory(record_dir=tmp_path)
    image = np.full((40, 50), np.nan, np.float32)
    with pytest.raises(PublisherRefused) as refused, \
            Publisher(ingest.endpoint, stream="nan") as pub:
        pub.start("image", "float32", image.shape, pixel_um=0.15)
        pub.send(image)
    assert refused.value.code == "nonfinite_image"
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(ingest.endpoint)
    plane = np.zeros((1, 96, 128), np.uint16)
    raw.send_multipart(encode_message(IMAGE))
    raw.send_multipart(encode_message(ChunkHeader("actinin", 1, 0, 1, 0, "uint16"), plane))
    raw.send_multipart(encode_message(ChunkHeader("actinin", 2, 1, 1, 0, "uint16"), plane))
    replies = []
    while raw.poll(5000) and not any(r["kind"] == "refused" for r in replies):
        replies.append(decode_reply(raw.recv()))
    raw.close()
    assert [r["code"] for r in replies if r["kind"] == "refused"] == ["image_chunks"]
    stats = ingest.stats()
    assert stats["nan"].errors_by_code == {"nonfinite_image": 1}
    assert stats["actinin"].errors_by_code == {"image_chunks": 1}
    assert stats["actinin"].frames_received == 1
