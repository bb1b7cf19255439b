"""The real-cell movie check's construction, on a stand-in cell image (the recorded one stays
in ../shared/data and never enters the tests): the cell is the mask with its nucleus hole
filled, release sites avoid the nucleus and the edge, the resting image is the recorded one
normalized to the cell, and the movie's events and ground truth follow the development
generator."""

from __future__ import annotations

import numpy as np
import pytest

from offline.experiments.real_cell_movies import cell_layout, load_cell, real_cell_movie

PIXEL_UM = 0.28


@pytest.fixture()
def cell_file(tmp_path):
    y, x = np.mgrid[0:40, 0:128]
    cell = ((y - 20) / 16.0) ** 2 + ((x - 64) / 58.0) ** 2 < 1
    nucleus = ((y - 20) / 5.0) ** 2 + ((x - 64) / 8.0) ** 2 < 1
    background = np.where(cell, 40 + 10 * np.sin(x / 1.3), 2).astype(np.uint8)
    path = tmp_path / "cell.npz"
    np.savez(path, background=background, mask=cell & ~nucleus, pixel_um=PIXEL_UM,
             laser_intensity=7)
    return path, cell, nucleus


def test_the_layout_is_the_recorded_cell(cell_file):
    path, cell, nucleus = cell_file
    resting, cytosol, pixel_um = load_cell(path)
    assert pixel_um == PIXEL_UM
    assert np.median(resting[cytosol]) == pytest.approx(1.0)
    layout = cell_layout(resting, cytosol, pixel_um, np.random.default_rng(0))
    assert np.array_equal(layout.inside, cell) and np.array_equal(layout.nucleus, nucleus)
    assert len(layout.sites_um) > 20
    iy, ix = np.round(layout.sites_um / pixel_um).astype(int).T
    assert not nucleus[iy, ix].any() and cell[iy, ix].all()


def test_a_movie_of_the_recorded_cell_has_events_and_truth(cell_file):
    path, cell, _ = cell_file
    loaded = load_cell(path)
    movie = real_cell_movie(1, loaded)
    assert movie.data.shape[1:] == cell.shape and movie.pixel_um == PIXEL_UM
    assert 3.0 <= movie.dt_ms <= 20.0
    assert movie.events and int(movie.instance_mask.max()) == len(movie.events)
    assert not movie.instance_mask[:, ~cell].any()  # events stay in the cell
    empty = real_cell_movie(1, loaded, empty=True)
    assert not empty.events and not empty.instance_mask.any()
    assert empty.name == "real-cell-empty-1"


def test_a_missing_image_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared/data"):
        load_cell(tmp_path / "absent.npz")


def test_the_check_without_the_image_is_one_line_and_exit_1(tmp_path, caplog):
    from offline.experiments.real_cell_movies import main

    assert main(["--background", str(tmp_path / "absent.npz")]) == 1
    assert "absent.npz not found" in caplog.text
