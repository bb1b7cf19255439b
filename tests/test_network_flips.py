"""offline.experiments.network_flips: the mirrored predictions are mirrored back and averaged."""

from __future__ import annotations

import numpy as np
import pytest

from offline.experiments.network_flips import FLIPS, flipped_predict, main


def _cumulative(self, batch: np.ndarray) -> np.ndarray:
    """Not mirror-symmetric: a running sum along X."""
    return np.cumsum(batch, axis=-1).astype(np.float32)


def test_a_mirror_symmetric_network_is_unchanged_and_others_are_averaged() -> None:
    batch = np.random.default_rng(0).random((2, 1, 3, 4, 5)).astype(np.float32)
    identity = flipped_predict(lambda self, b: b.copy(), FLIPS["xy"])
    np.testing.assert_allclose(identity(None, batch), batch, rtol=1e-6)
    averaged = flipped_predict(_cumulative, FLIPS["x"])(None, batch)
    expected = (np.cumsum(batch, -1) + np.flip(np.cumsum(np.flip(batch, -1), -1), -1)) / 2
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)
    assert flipped_predict(_cumulative, FLIPS["none"])(None, batch).tobytes() == \
        _cumulative(None, batch).tobytes()


def test_a_line_scan_is_never_mirrored_in_time() -> None:
    with pytest.raises(SystemExit):
        main(["--kind", "linescan", "--flips", "xy"])
