"""TIFF opening: axes, calibration from each metadata flavour, chunked reads, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from acquisition.stream_kind import StreamKind
from acquisition.tiff_source import TiffSourceError, open_tiff

RNG = np.random.default_rng(0)
MOVIE = RNG.integers(0, 60_000, (12, 8, 16), dtype=np.uint16)
LINES = RNG.integers(0, 60_000, (300, 16), dtype=np.uint16)


def _read_all(source, n: int) -> np.ndarray:
    return np.concatenate(list(source.iter_chunks(n)))


@pytest.mark.parametrize("kwargs", [
    dict(imagej=True, resolution=(4, 4), metadata={"axes": "TYX", "unit": "um",
                                                  "finterval": 0.0068}),
    dict(imagej=True, resolution=(4, 4), compression="zlib",
         metadata={"axes": "TYX", "unit": "micron", "finterval": 0.0068}),
    dict(ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 0.25, "TimeIncrement": 6.8,
                             "TimeIncrementUnit": "ms"}),
    dict(ome=True, compression="zlib", metadata={"axes": "TYX", "PhysicalSizeX": 250,
                                                "PhysicalSizeXUnit": "nm",
                                                "TimeIncrement": 0.0068}),
    dict(byteorder=">", metadata={"castream": '{"pixel_um": 0.25, "dt_ms": 6.8}'}),
], ids=["imagej", "imagej-zlib", "ome", "ome-zlib-nm", "bigendian-castream-json"])
def test_movie_flavours(tmp_path: Path, kwargs: dict) -> None:
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, MOVIE, **kwargs)
    with open_tiff(path) as source:
        assert (source.axes, source.stream_kind, source.shape) == ("TYX", StreamKind.MOVIE,
                                                                   (12, 8, 16))
        assert source.dtype == np.uint16 and len(source) == 12
        assert source.pixel_um == pytest.approx(0.25) and source.dt_ms == pytest.approx(6.8)
        np.testing.assert_array_equal(_read_all(source, 5), MOVIE)
        np.testing.assert_array_equal(source.read(3, 4), MOVIE[3:4])


def test_imagej_hyperstack_singleton_axes_are_squeezed(tmp_path: Path) -> None:
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, MOVIE[:, None, None], imagej=True, resolution=(5, 5),
                     metadata={"axes": "TZCYX", "unit": "um", "finterval": 0.01})
    with open_tiff(path) as source:
        assert (source.shape, source.pixel_um, source.dt_ms) == ((12, 8, 16), 0.2, 10.0)
        np.testing.assert_array_equal(_read_all(source, 7), MOVIE)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_imagej_linescan_calibration(tmp_path: Path, compression: str | None) -> None:
    path = tmp_path / "line.tif"
    info = '{"castream": {"pixel_um": 0.2, "dt_ms": 1.5, "blank": 100.0, "cell": "c1"}}'
    tifffile.imwrite(path, LINES, imagej=True, resolution=(5, 1 / 1.5), compression=compression,
                     metadata={"axes": "YX", "unit": "um", "yunit": "ms", "Info": info})
    with open_tiff(path) as source:
        assert (source.axes, source.stream_kind, source.shape) == ("TX", StreamKind.LINESCAN,
                                                                   (300, 16))
        assert (source.pixel_um, source.dt_ms) == (0.2, 1.5)
        assert (source.blank, source.cell) == (100.0, "c1")
        np.testing.assert_array_equal(_read_all(source, 64), LINES)


def test_linescan_from_yresolution_only(tmp_path: Path) -> None:
    path = tmp_path / "line.tif"
    tifffile.imwrite(path, LINES, imagej=True, resolution=(5, 0.5),
                     metadata={"axes": "YX", "unit": "micron", "yunit": "sec"})
    with open_tiff(path) as source:
        assert (source.pixel_um, source.dt_ms) == (0.2, 2000.0)


def test_missing_calibration_names_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, LINES)
    with pytest.raises(TiffSourceError) as info:
        open_tiff(path)
    assert info.value.code == "calibration"
    assert "--pixel-um" in str(info.value) and "--dt-ms" in str(info.value)
    assert "line interval" in str(info.value)
    with open_tiff(path, pixel_um=0.3, dt_ms=2.0, blank=50) as source:
        assert (source.pixel_um, source.dt_ms, source.blank) == (0.3, 2.0, 50)
    with open_tiff(path, require_calibration=False) as source:
        assert source.pixel_um is None


def test_flags_override_metadata(tmp_path: Path) -> None:
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, MOVIE, imagej=True, resolution=(4, 4),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 0.0068})
    with open_tiff(path, pixel_um=0.1, dt_ms=3.0) as source:
        assert (source.pixel_um, source.dt_ms) == (0.1, 3.0)


def test_centimeter_resolution_tag(tmp_path: Path) -> None:
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, MOVIE, resolution=(50_000, 50_000), resolutionunit="CENTIMETER")
    with open_tiff(path, dt_ms=1.0) as source:
        assert source.pixel_um == pytest.approx(0.2)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_mode_overrides(tmp_path: Path, compression: str | None) -> None:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, MOVIE, compression=compression)
    with open_tiff(path, pixel_um=1, dt_ms=1, stream_kind=StreamKind.LINESCAN) as source:
        assert source.shape == (96, 16)
        np.testing.assert_array_equal(_read_all(source, 10), MOVIE.reshape(96, 16))
    tifffile.imwrite(path, LINES, compression=compression)
    with open_tiff(path, pixel_um=1, dt_ms=1, stream_kind=StreamKind.MOVIE) as source:
        assert source.shape == (1, 300, 16)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        open_tiff(tmp_path / "nope.tif")
    text = tmp_path / "notes.tif"
    text.write_text("hello")
    with pytest.raises(TiffSourceError, match="not a TIFF") as info:
        open_tiff(text)
    assert info.value.code == "not_tiff"
    with pytest.raises(TiffSourceError) as info:
        open_tiff(tmp_path)
    assert info.value.code == "not_tiff"


@pytest.mark.parametrize("kwargs", [{}, {"compression": "zlib"},
                                    {"compression": "zlib", "imagej": True}])
def test_truncated_files_are_corrupt(tmp_path: Path, kwargs: dict) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, MOVIE, **kwargs)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TiffSourceError, match="truncated") as info:
        open_tiff(path, pixel_um=1, dt_ms=1)
    assert info.value.code == "corrupt_tiff"


def test_unsupported_dimensionality(tmp_path: Path) -> None:
    path = tmp_path / "twochannels.tif"
    tifffile.imwrite(path, np.zeros((5, 2, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "TCYX"})
    with pytest.raises(TiffSourceError, match="one channel") as info:
        open_tiff(path, pixel_um=1, dt_ms=1)
    assert info.value.code == "dimensionality"
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(TiffSourceError) as info:
        open_tiff(rgb, pixel_um=1, dt_ms=1)
    assert info.value.code == "dimensionality"


@pytest.mark.parametrize(("values", "what"), [(LINES > 30_000, "true/false"),
                                              (LINES.astype(np.complex64), "complex")])
def test_masks_and_complex_values_are_refused(tmp_path: Path, values: np.ndarray,
                                              what: str) -> None:
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, values)
    with pytest.raises(TiffSourceError, match=what) as info:
        open_tiff(path, pixel_um=1, dt_ms=1)
    assert info.value.code == "dtype"
    signed = tmp_path / "signed.tif"
    tifffile.imwrite(signed, LINES.astype(np.int32) - 1_000)
    with open_tiff(signed, pixel_um=1, dt_ms=1) as source:
        assert source.read(0, 3).dtype == np.int32
