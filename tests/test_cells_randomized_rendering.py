"""Randomized rendering of training fields (domain randomization): ranges around the default
that never reproduce the variant generator's choices; only training fields use it."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.simulate.structure import RANDOMIZED_RANGES, RenderStyle
from offline.cellstruct.dataset import simulate


def _drawn(style: RenderStyle) -> dict[str, float]:
    return {"psf_sigma_um": style.psf_sigma_um, "psf_halo_sigma_um": style.psf_halo_sigma_um,
            "disc_width_um": style.disc_width_um,
            "myofibril_spacing_lo_um": style.myofibril_spacing_um[0],
            "myofibril_spacing_hi_um": style.myofibril_spacing_um[1],
            "punctum_sigma_um": style.punctum_sigma_um,
            "puncta_density_per_um2": style.puncta_density_per_um2,
            "photons_per_unit": style.photons_per_unit[0],
            "read_noise_counts": style.read_noise_counts[0],
            "offset_centre_counts": float(np.mean(style.offset_counts)),
            "illumination_variation": style.illumination_variation,
            "disc_jitter_um": style.disc_jitter_um}


def test_randomized_styles_stay_in_their_ranges_and_are_reproducible():
    styles = [RenderStyle.randomized(np.random.default_rng(k)) for k in range(200)]
    assert RenderStyle.randomized(np.random.default_rng(3)) == styles[3]
    halos = np.array([s.psf_halo_fraction for s in styles])
    assert 0.3 < np.mean(halos == 0) < 0.7
    lo, hi = RANDOMIZED_RANGES["psf_halo_fraction"]
    assert np.all((halos == 0) | ((halos >= lo) & (halos <= hi)))
    for name, values in {n: [_drawn(s)[n] for s in styles] for n in _drawn(styles[0])}.items():
        lo, hi = RANDOMIZED_RANGES[name]
        assert lo <= min(values) and max(values) <= hi, name
        assert max(values) - min(values) > 0.8 * (hi - lo), name   # the range is used
    for style in styles:
        assert style.name == "randomized"
        assert style.myofibril_spacing_um[0] < style.myofibril_spacing_um[1]


def test_ranges_surround_the_default_and_exclude_the_variant():
    default, variant = RenderStyle(), RenderStyle.variant()
    scalars = ("psf_sigma_um", "disc_width_um", "punctum_sigma_um", "puncta_density_per_um2",
               "illumination_variation", "disc_jitter_um")
    for name in scalars:
        lo, hi = RANDOMIZED_RANGES[name]
        assert lo < getattr(default, name) < hi, name
        assert not lo <= getattr(variant, name) <= hi, name
    # the variant's halo is stronger than any drawn one, its myofibril spacing range wider
    assert variant.psf_halo_fraction > RANDOMIZED_RANGES["psf_halo_fraction"][1]
    assert variant.myofibril_spacing_um[0] < RANDOMIZED_RANGES["myofibril_spacing_lo_um"][0]
    assert variant.myofibril_spacing_um[1] > RANDOMIZED_RANGES["myofibril_spacing_hi_um"][1]
    # per-field photon level and read noise: the variant's dimmest and noisiest lie outside
    assert variant.photons_per_unit[0] < RANDOMIZED_RANGES["photons_per_unit"][0]
    assert variant.read_noise_counts[1] > RANDOMIZED_RANGES["read_noise_counts"][1]
    assert variant.offset_counts[0] < RANDOMIZED_RANGES["offset_centre_counts"][0] - 10
    assert variant.offset_counts[1] > RANDOMIZED_RANGES["offset_centre_counts"][1] + 10


def test_randomized_training_field_keeps_its_layout_and_only_for_training():
    plain, randomized = simulate("train", 7), simulate("train", 7, "randomized")
    assert plain.style == "default" and randomized.style == "randomized"
    assert np.array_equal(plain.labels, randomized.labels)
    assert [o["kind"] for o in plain.objects] == [o["kind"] for o in randomized.objects]
    assert not np.array_equal(plain.image, randomized.image)
    again = simulate("train", 7, "randomized")
    assert np.array_equal(again.image, randomized.image)
    assert simulate("train", 8, "randomized").params.style != randomized.params.style
    for split in ("val", "test", "variant"):
        with pytest.raises(ValueError, match="training fields only"):
            simulate(split, 0, "randomized")


def test_selection_split_is_rendered_randomized_on_its_own_seeds():
    """The ``select`` split (docs/CELLS.md): held-out seeds, every field rendered by
    RenderStyle.randomized drawn from its own seed, never the default or the variant."""
    from offline.cellstruct.dataset import SPLIT_SEEDS, field_params

    starts = sorted(SPLIT_SEEDS.values())
    assert len(set(starts)) == len(starts) and SPLIT_SEEDS["select"] == 4_000_000
    styles = [field_params(np.random.default_rng([SPLIT_SEEDS["select"] + i, 99]), "select",
                           style_rng=np.random.default_rng([SPLIT_SEEDS["select"] + i, 77])).style
              for i in range(5)]
    assert all(s.name == "randomized" for s in styles)
    assert len({s.psf_sigma_um for s in styles}) == 5
    assert RenderStyle() not in styles and RenderStyle.variant() not in styles
    val = field_params(np.random.default_rng([SPLIT_SEEDS["val"], 99]), "val")
    assert val.style == RenderStyle()
    with pytest.raises(ValueError, match="training fields only"):
        simulate("select", 0, "randomized")
