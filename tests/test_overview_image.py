"""The analysis overview (``overview.png``): movie panels laid out to the field's shape."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from engine.sinks.overview import OverviewImage, _movie_axes  # noqa: E402


def _grid(axes) -> tuple[int, int]:
    return axes[0].get_subplotspec().get_gridspec().get_geometry()


def test_a_tall_field_gets_its_panels_side_by_side_a_wide_one_stacked():
    tall, tall_axes = _movie_axes(plt, 426, 283)
    wide, wide_axes = _movie_axes(plt, 64, 512)
    assert _grid(tall_axes) == (1, 2) and _grid(wide_axes) == (2, 1)
    # neither figure is mostly empty page: its height follows the field's aspect
    assert wide.get_size_inches()[1] < tall.get_size_inches()[1]
    plt.close("all")


def test_a_movie_overview_is_written(tmp_path):
    frames = np.random.default_rng(0).poisson(20, (6, 40, 30)).astype(np.uint16)
    overview = OverviewImage(frames.shape)
    overview.add(0, frames)
    path = overview.write(tmp_path / "overview.png", [], 0.2, 6.8, "tall")
    assert path.stat().st_size > 1_000
