"""The structure simulator: determinism and consistent ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.simulate.structure import (
    RenderStyle,
    StructureFieldParams,
    simulate_structure_field,
)

SMALL = StructureFieldParams(shape_px=(600, 600), n_cardiomyocytes=3, n_debris=2)


def test_same_seed_same_field_other_seed_other_field():
    a, b = simulate_structure_field(SMALL, seed=5), simulate_structure_field(SMALL, seed=5)
    c = simulate_structure_field(SMALL, seed=6)
    assert np.array_equal(a.image, b.image) and a.objects == b.objects
    assert not np.array_equal(a.image, c.image)


def test_ground_truth_is_consistent():
    field = simulate_structure_field(SMALL, seed=1)
    assert field.image.dtype == np.uint16 and field.image.shape == (600, 600)
    ids = set(np.unique(field.labels)) - {0}
    assert ids == {o["object_id"] for o in field.objects}
    for obj in field.objects:
        area = np.count_nonzero(field.labels == obj["object_id"]) * field.pixel_um ** 2
        assert abs(area - obj["area_um2"]) < 1e-6
        if obj["is_cell"]:
            assert obj["kind"] == "cardiomyocyte"
            assert 1 <= obj["structure_score"] <= 5 and len(obj["rater_scores"]) == 2
            assert obj["sarcomerisation"] in (1, 2, 3, 4) and obj["directionality"] in (1, 2, 3, 4)
            assert obj["cell_source"] in ("adult", "neonatal", "ipsc")
            assert 1.7 <= obj["sarcomere_length_um"] <= 2.1
        else:
            assert np.isnan(obj["structure_score"]) and obj["cell_source"] == ""
    cell_ids = set(np.unique(field.cell_labels())) - {0}
    assert cell_ids == {o["object_id"] for o in field.objects if o["is_cell"]}


def test_cells_are_brighter_than_background_and_zstack_shape():
    params = SMALL.with_(z_slices=5, style=RenderStyle.variant())
    field = simulate_structure_field(params, seed=2)
    assert field.image.shape == (5, 600, 600) and field.axes == "ZYX"
    best = field.image.max(axis=0).astype(float)
    cells = field.cell_labels() > 0
    assert np.median(best[cells]) > np.median(best[field.labels == 0]) + 10


def test_higher_organisation_has_more_zdiscs():
    pairs = []
    for seed in range(4):
        field = simulate_structure_field(SMALL, seed=seed)
        pairs += [(o["organisation"], o["pattern_fractions"]["zdiscs"])
                  for o in field.objects if o["is_cell"]]
    organisation, zdiscs = np.array(pairs).T
    assert np.corrcoef(organisation, zdiscs)[0, 1] > 0.8


def test_direction_field_is_the_directionality_ratings_own():
    """The rendered direction map holds, per cardiomyocyte, exactly the pixels and directions
    whose spread the directionality rating cuts; nothing outside cardiomyocytes."""
    field = simulate_structure_field(SMALL, seed=1)
    direction = field.direction_rad
    assert direction.shape == field.labels.shape and direction.dtype == np.float32
    defined = np.isfinite(direction)
    assert not np.any(defined & (field.cell_labels() == 0))
    for obj in field.objects:
        if not obj["is_cell"]:
            continue
        angles = direction[(field.labels == obj["object_id"]) & defined].astype(np.float64)
        assert angles.size > 0
        resultant = np.abs(np.mean(np.exp(2j * angles)))
        spread = np.rad2deg(np.sqrt(-2 * np.log(min(resultant, 1.0))) / 2)
        assert spread == pytest.approx(obj["angle_spread_deg"], abs=1e-3)
