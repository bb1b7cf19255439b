"""StreamKind: every outside spelling of a stream's kind converts to it and back."""

from __future__ import annotations

import pytest

from acquisition.stream_kind import StreamKind
from acquisition.wire import MODES, StartHeader, decode_header, encode_header

#: the spellings on the wire, in arrays / model config.json, and in model directory names
SPELLINGS = [
    (StreamKind.LINESCAN, "linescan", "TX", "linescan", (512,)),
    (StreamKind.MOVIE, "frames", "TYX", "movie", (64, 512)),
]


@pytest.mark.parametrize(("kind", "wire_mode", "axes", "model_kind", "item_shape"), SPELLINGS)
def test_time_series_round_trips(kind, wire_mode, axes, model_kind, item_shape) -> None:
    assert (kind.wire_mode, kind.axes, kind.model_kind) == (wire_mode, axes, model_kind)
    assert StreamKind.from_wire_mode(wire_mode) is kind
    assert StreamKind.from_axes(axes) is kind
    assert StreamKind.from_model_kind(model_kind) is kind
    assert StreamKind.from_item_shape(item_shape) is kind
    assert kind.item_ndim == len(item_shape) == len(axes) - 1
    assert kind in StreamKind.time_series() and not kind.is_image


def test_only_line_scans_are_line_scans() -> None:
    assert [kind for kind in StreamKind if kind.is_linescan] == [StreamKind.LINESCAN]
    assert [kind.item_name for kind in StreamKind] == ["line", "frame", "plane"]


def test_image_streams_have_no_model() -> None:
    image = StreamKind.from_wire_mode("image")
    assert image is StreamKind.IMAGE and image.is_image and image.axes == "ZYX"
    assert StreamKind.from_axes("YX") is StreamKind.from_axes("ZYX") is StreamKind.IMAGE
    assert image not in StreamKind.time_series()
    with pytest.raises(ValueError, match="no event model"):
        _ = image.model_kind
    with pytest.raises(ValueError, match="model kind 'image'"):
        StreamKind.from_model_kind("image")


@pytest.mark.parametrize(("convert", "value", "message"), [
    (StreamKind.from_wire_mode, "movie", "unknown wire mode 'movie'; expected one of linescan, "
                                         "frames, image"),
    (StreamKind.from_wire_mode, None, "unknown wire mode None"),
    (StreamKind.from_axes, "XT", "unknown axes 'XT'; expected one of TX, TYX, ZYX, YX"),
    (StreamKind.from_model_kind, "frames", "unknown model kind 'frames'; expected one of "
                                           "linescan, movie"),
    (StreamKind.from_item_shape, (2, 64, 512), "1 or 2 axes, got shape (2, 64, 512)"),
])
def test_unknown_spellings_are_refused_by_name(convert, value, message) -> None:
    with pytest.raises(ValueError) as caught:
        convert(value)
    assert message in str(caught.value)


def test_the_wire_keeps_its_values() -> None:
    """The modes a receiver accepts, and those the headers carry, are unchanged strings."""
    assert MODES == ("linescan", "frames", "image")
    for kind in StreamKind:
        shape = (8,) if kind.is_linescan else (4, 8)
        header = StartHeader("s", kind.wire_mode, "uint16", shape, 0.2, 1.0)
        decoded = decode_header(encode_header(header))
        assert decoded.mode == kind.wire_mode and decoded.stream_kind is kind
