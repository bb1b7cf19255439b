"""Where the directionality rating's information is lost: the simulator's rendered myofibril
direction against what the image shows (issue 13; validation fields only).

The rating cuts the spread (circular SD) of the *rendered* directions over a cell's oriented
pixels (Z-discs, fibres, beaded rows) at 10 / 20 / 35°. The simulator now keeps that
direction field (``StructureField.direction_rad``), so for every true cell of the first N
validation fields this compares, by Spearman correlation with the rendered spread and by
agreement of its own 10/20/35° cuts with the label's (cells rated 2–4, i.e. with oriented
structure):

* ``oracle_roi``: the rendered directions over the candidate ROI (segmentation's share of
  the loss);
* ``oracle_pn``: the rendered directions over the pattern net's oriented pixels of the ROI
  (segmentation and pattern net);
* ``oracle_vis``: the same pixels weighted by the sarcomere-band structure tensor's magnitude
  at 1.5 µm (what a magnitude-weighted measurement can see if it reads every direction right);
* ``s15``: the packaged feature (``orientation_spread``: measured directions, that weighting);
* ``s4_unw``: directions of the tensor integrated over 4 µm, every oriented pixel weighted
  equally (directions carried into pixels that show little);
* with ``--net``, ``net_unw`` and ``net_mag``: the directions of the per-pixel direction net
  (:mod:`offline.experiments.cells_direction_net`) over the pattern net's oriented pixels,
  weighted equally or by the length of its (cos 2θ, sin 2θ) output.

``python -m offline.experiments.cells_direction_probe --fields 60 [--net build/direction-net.pt]``
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

log = logging.getLogger(__name__)

CUES = ("oracle_roi", "oracle_pn", "oracle_vis", "s15", "s4_unw")
NET_CUES = ("net_unw", "net_mag")
BOUNDS_DEG = (10.0, 20.0, 35.0)


def _spread_deg(angles_rad: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Circular SD (axial, degrees) of ``angles_rad``; NaN for fewer than 20 pixels."""
    if angles_rad.size < 20:
        return float("nan")
    w = np.ones_like(angles_rad) if weights is None else weights
    if w.sum() <= 0:
        return float("nan")
    resultant = np.clip(np.abs((w * np.exp(2j * angles_rad)).sum()) / w.sum(), 1e-12, 1.0)
    return float(np.rad2deg(np.sqrt(-2 * np.log(resultant)) / 2))


def cues(crop, mask, classes, direction, pixel_um, net_vectors=None) -> dict[str, float]:
    """The :data:`CUES` of one ROI (crop coordinates)."""
    from engine.cells.measure import sarcomere_band
    from engine.cells.patterns import ORIENTED_CLASSES
    from offline.experiments.cells_directionality import _tensor

    truly = mask & np.isfinite(direction)
    oriented = mask & np.isin(classes, ORIENTED_CLASSES)
    seen = oriented & np.isfinite(direction)
    banded = sarcomere_band(crop, mask, pixel_um)
    z15, _ = _tensor(banded, pixel_um, 1.5)
    z4, _ = _tensor(banded, pixel_um, 4.0)
    # the tensor's angle is 2φ of the gradient; the myofibril runs across the Z-disc grating
    measured15 = np.angle(z15) / 2
    measured4 = np.angle(z4) / 2
    out = {}
    if net_vectors is not None:
        z = net_vectors[0] + 1j * net_vectors[1]
        out = {"net_unw": _spread_deg(np.angle(z[oriented]) / 2),
               "net_mag": _spread_deg(np.angle(z[oriented]) / 2, np.abs(z[oriented]))}
    return out | {"oracle_roi": _spread_deg(direction[truly]),
            "oracle_pn": _spread_deg(direction[seen]),
            "oracle_vis": _spread_deg(direction[seen], np.abs(z15[seen])),
            "s15": _spread_deg(measured15[oriented], np.abs(z15[oriented])),
            "s4_unw": _spread_deg(measured4[oriented])}


def probe(n_fields: int, model_dir: str, net_path: str | None = None) -> dict[str, np.ndarray]:
    import torch

    from engine.cells.model import CellsModel
    from engine.cells.patterns import STRIDE
    from offline.cellstruct.dataset import match_truth
    from offline.experiments.cells_directionality import segmented_field

    torch.set_num_threads(1)
    model = CellsModel.load(model_dir)
    names = (*CUES, *(NET_CUES if net_path else ()))
    net = None
    if net_path:
        from offline.experiments.cells_direction_net import load, predict

        net = load(net_path)
    out: dict[str, list[float]] = {name: [] for name in (*names, "realized", "label")}
    for index in range(n_fields):
        field, plane, labels, rows, image, full = segmented_field("val", index, model)
        vectors = None
        if net is not None:
            vectors = np.repeat(np.repeat(predict(net, image), STRIDE, 1), STRIDE, 2)[
                :, :plane.shape[0], :plane.shape[1]]
        for row in rows:
            mask = labels == row["cell_id"]
            match = match_truth(mask, field)
            if not match["is_cell"]:
                continue
            r0, c0, r1, c1 = row["bbox"]
            box = (slice(r0, r1), slice(c0, c1))
            values = cues(plane[box], mask[box], full[box], field.direction_rad[box],
                          field.pixel_um, None if vectors is None else vectors[(slice(None), *box)])
            for name in names:
                out[name].append(values[name])
            out["realized"].append(match["truth"]["angle_spread_deg"])
            out["label"].append(match["directionality"])
        log.info("validation field %d: %d cells", index, len(out["label"]))
    return {name: np.asarray(v, float) for name, v in out.items()}


def summarize(data: dict[str, np.ndarray]) -> list[str]:
    from scipy.stats import spearmanr

    from acquisition.simulate.structure.field import rating

    rated = data["label"] >= 2
    truth_class = np.array([rating(v, BOUNDS_DEG, ascending=False)
                            for v in data["realized"][rated]])
    lines = [f"{int(rated.sum())} true cells rated 2-4 (of {data['label'].size})",
             "| cue | Spearman with the rendered spread | agreement of its 10/20/35° cuts | "
             "cells measured |", "|---|---|---|---|"]
    for name in (n for n in (*CUES, *NET_CUES) if n in data):
        values = data[name][rated]
        ok = np.isfinite(values)
        rho = spearmanr(values[ok], data["realized"][rated][ok]).statistic
        classes = np.array([rating(v, BOUNDS_DEG, ascending=False) if np.isfinite(v) else 0
                            for v in values])
        lines.append(f"| {name} | {rho:.3f} | {np.mean(classes == truth_class):.3f} | "
                     f"{int(ok.sum())} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", type=int, default=60)
    parser.add_argument("--model", default="engine/models/default/cells")
    parser.add_argument("--net", help="a direction net's state dict (cells_direction_net)")
    parser.add_argument("--save", help="write the per-cell cues to this .npz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    data = probe(args.fields, args.model, args.net)
    if args.save:
        np.savez(args.save, **data)
    for line in summarize(data):
        log.info("%s", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
