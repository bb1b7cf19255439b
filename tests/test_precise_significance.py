"""The rule that proposes a model's ``precise_min_significance`` (offline/experiments)."""

from __future__ import annotations

from offline.experiments.precise_significance import precise_from


def _band(lo: float, n: int, error: float) -> dict:
    errors = {k: {"median_rel_error": error} for k in ("amplitude_dff0", "fwhm_um", "fdhm_ms")}
    return {"lo": lo, "hi": None, "n": n, "errors": errors}


def test_precise_from_is_the_lowest_edge_from_which_every_counted_band_is_precise():
    bands = [_band(0, 50, 0.30), _band(10, 50, 0.12), _band(15, 50, 0.20), _band(20, 50, 0.10),
             _band(30, 40, 0.08)]
    assert precise_from(bands, min_band=10) == 20  # 10 is precise, but 15 above it is not
    bands.append(_band(50, 4, 0.40))  # too few sparks to judge...
    assert precise_from(bands, min_band=10) == 20
    assert precise_from(bands, min_band=1) is None  # ...unless every band counts
    assert precise_from([_band(0, 50, 0.5)], min_band=10) is None
