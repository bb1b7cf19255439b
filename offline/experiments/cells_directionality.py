"""Directionality of the cells model (issue 13): which orientation cues, targets and how much
training data move the directionality weighted F1, by cross-validation on training and
validation fields only (folds by field, ``field % 5``; no test or variant field is read).

``python -m offline.experiments.cells_directionality dump --split train --fields 0 240``
simulates and segments fields exactly as ``castream train-cells`` does
(:func:`offline.cellstruct.dataset.simulate`, the engine's segmenter and
:func:`engine.cells.analyze.measure_candidates` with the packaged model's pattern net), keeps
the v4 features and targets of every true cell, the simulator's realized myofibril spread
(the quantity the directionality rating cuts at 10 / 20 / 35°) and these extra cues, all over
the pattern net's oriented pixels of the ROI, on the sarcomere-scale ring band-pass of
:func:`engine.cells.measure.orientation_spread`:

* ``s15``, ``s25``, ``s4``: the spread (circular SD, degrees) with the structure tensor
  integrated over 1.5 (= v4's ``orientation_spread``), 2.5 and 4 µm; ``s4_p05`` weighted by
  √magnitude instead of magnitude;
* ``coh15``, ``coh4``: magnitude-weighted mean coherence |z| / trace at 1.5 and 4 µm;
* ``q50_4``, ``q75_4``, ``q90_4``: magnitude-weighted quantiles of each pixel's deviation
  from the cell's mean direction (4 µm; an orientation histogram in three numbers);
  ``f10_4``, ``f20_4``: the weighted fraction deviating by more than 10° / 20°;
* ``s15_zd``, ``s15_other``: the spread over Z-disc pixels only and over the other oriented
  pixels (fibres, beaded rows); ``s15_unw_zd`` the Z-disc spread unweighted.

``python -m offline.experiments.cells_directionality cv --dumps DUMP… [--extra DUMP…]
--configs base q aux …`` trains structure heads like :mod:`offline.cellstruct.train` (the
same MLP: two hidden layers of 64, dropout 0.1, full-batch AdamW 3e-3, 1,500 steps, the
weights with the best loss on the held-out fold) on four folds and predicts the fifth, and
prints the pooled weighted F1 of directionality and sarcomerisation, cell-source accuracy and
the raw score's Spearman / MAE. ``--extra`` dumps are added to every fold's training side
only (more training fields; they are never predicted). ``aux`` adds a regression of
ln(1 + realized spread) to the loss (weight 1; class-1 cells without orientation at 90°).

``cv --candidates CACHE…`` reads ``castream train-cells`` candidate caches instead of dumps
(``train[-randomized]-N-TAG.npz`` of the training split, or chunks of it in the same format,
and ``val-60-TAG.npz``): the true cells with the packaged model's features and targets, no
extra cues and no realized spread (configurations ``base`` and ``h128`` only). Training
fields below ``--pool-fields`` (240) and the validation fields are cross-validated; each
``--train-fields N`` is one row with training fields ``pool`` … ``N - 1`` added to every
fold's training side. ``--seeds`` trains one head per seed and fold and reports the figures
of their averaged probabilities (as the packaged five-member ensemble) and each seed's
directionality alone; with candidate caches also the directionality of the validation and
the training cells of the pool separately.

Commands (dumps of training fields 0–239 and 240–479 and of the validation fields)::

    python -m offline.experiments.cells_directionality dump --split train --fields 0 240 --out build/dirs/train-0-240.npz
    python -m offline.experiments.cells_directionality dump --split train --fields 240 480 --out build/dirs/train-240-480.npz
    python -m offline.experiments.cells_directionality dump --split val --fields 0 60 --out build/dirs/val.npz
    python -m offline.experiments.cells_directionality cv --dumps build/dirs/train-0-240.npz build/dirs/val.npz --configs base aux zd s4coh q
    python -m offline.experiments.cells_directionality cv --dumps build/dirs/train-0-240.npz build/dirs/val.npz --extra build/dirs/train-240-480.npz --configs base q aux q_aux h128
    python -m offline.experiments.cells_directionality cv --dumps build/dirs/train-0-240.npz build/dirs/val.npz --configs base --errors

Result (this machine, 2026-12-04, one core; 1,014 true cells of training fields 0–239 and the
validation fields, one head per fold, seed 0; the dumps were first written by a scratch copy
of ``dump`` and checked identical to it on validation fields 0–3):

=====================================================  ===========  ======  ======
configuration                                          direction.   sarc.   source
=====================================================  ===========  ======  ======
v4 features (``base``), 240 training fields             0.753       0.910   0.954
``aux`` (spread regression as a second target)          0.755       0.918   0.957
``zd`` (+ ``s15_zd``, ``s15_other``)                    0.749       0.921   0.952
``s4coh`` (+ ``s4``, ``coh15``)                         0.751       0.920   0.951
``q`` (+ quantiles and fractions of the deviation)      0.764       0.909   0.954
``base`` + 240 more training fields (``--extra``)      0.776       0.912   0.962
``q`` + 240 more training fields                        0.778       0.913   0.959
``aux`` + 240 more training fields                      0.766       0.918   0.964
``q_aux`` + 240 more training fields                    0.778       0.914   0.960
``h128`` (hidden 128) + 240 more training fields        0.763       0.922   0.962
=====================================================  ===========  ======  ======

Read: no orientation cue and no second target moved directionality beyond the seed-to-seed
spread (about ±0.01); more training fields did (+0.023). ``--errors`` (``base``): the errors
sit in cells of low orientation coherence (``coh15`` < 0.7: 209 of 1,014 cells, 58 %
misclassified; 0.7–0.9: 163, 37 %; ≥ 0.9: 532, 6 %) and in candidates that are a merged or
cut cell (IoU < 0.85 with the true cell: 110 cells, 33 %); among coherent, well-segmented
cells (``coh15`` > 0.85, IoU ≥ 0.95, realized spread 4–25°: 147 cells) ln(measured /
realized spread) has median −0.032 and interquartile range 0.157 (about ±8 %), so cells
within a degree of the 10° bound stay a coin toss. Adopted from this: the packaged v5 heads
are trained on 720 training fields (``docs/CELLS.md``, "Directionality (v5)").

With v6's rendering and features (2026-12-06; randomized training fields 0–2,159 and the
validation fields measured with the packaged v6 pattern net, the caches ``castream
train-cells --randomize-rendering all --pattern-model engine/models/default/cells --fields
2160 60 60 60`` reads; five seeds averaged; 1,007 cells)::

    python -m offline.experiments.cells_directionality cv --candidates TRAIN_CACHE VAL_CACHE \
        --pool-fields 240 --seeds 0 1 2 3 4 --train-fields 240 480 720 1440 2160

(run as three commands, ``--train-fields 240 480 720``, ``1440`` and ``720 2160``, on
240-field chunks of the training cache: the same cells in the same order) gave directionality 0.742 / 0.769 / 0.769 / 0.784 / 0.789 for 240 / 480 / 720 / 1,440 /
2,160 training fields (sarcomerisation 0.908 / 0.905 / 0.904 / 0.924 / 0.924); the rows, the
exact commands and what was built from them are in ``docs/CELLS.md``, "More training fields
for the heads (v7 candidate)".
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from offline.experiments.cells_directionality_cv import (
    CONFIGS,
    _load,
    candidates_sets,
    cross_validate_arrays,
    error_breakdown,
)

log = logging.getLogger(__name__)

EXTRA = ("s15", "s25", "s4", "s4_p05", "coh15", "coh4", "q50_4", "q75_4", "q90_4", "f10_4",
         "f20_4", "s15_zd", "s15_other", "s15_unw_zd")


def _tensor(banded, pixel_um, integration_um):
    from scipy import ndimage
    from skimage.feature import structure_tensor

    a_rr, a_rc, a_cc = structure_tensor(banded, sigma=0.15 / pixel_um + 0.5, order="rc")
    a_rr, a_rc, a_cc = (ndimage.gaussian_filter(a, integration_um / pixel_um)
                        for a in (a_rr, a_rc, a_cc))
    return (a_cc - a_rr) + 2j * a_rc, a_cc + a_rr


def _spread(z, weights) -> float:
    total = weights.sum()
    if total <= 0:
        return 90.0
    resultant = np.clip(np.abs((weights * np.exp(1j * np.angle(z))).sum()) / total, 1e-12, 1)
    return float(np.rad2deg(np.sqrt(-2 * np.log(resultant)) / 2))


def extra_cues(crop, mask, classes, pixel_um) -> list[float]:
    """The :data:`EXTRA` cues of one ROI (see the module docstring)."""
    from engine.cells.measure import sarcomere_band
    from engine.cells.patterns import ORIENTED_CLASSES

    oriented = mask & np.isin(classes, ORIENTED_CLASSES)
    pixels = oriented if oriented.sum() >= 20 else mask
    zdiscs = mask & (classes == 5)
    other = oriented & ~zdiscs
    banded = sarcomere_band(crop, mask, pixel_um)
    z15, t15 = _tensor(banded, pixel_um, 1.5)
    z25, _ = _tensor(banded, pixel_um, 2.5)
    z4, t4 = _tensor(banded, pixel_um, 4.0)

    def spread(z, sel, power=1.0):
        return _spread(z[sel], np.abs(z[sel]) ** power) if sel.sum() >= 20 else np.nan

    w4 = np.abs(z4[pixels])
    mean_direction = np.angle(z4[pixels].sum())
    deviation = np.rad2deg(np.abs(np.angle(z4[pixels] * np.exp(-1j * mean_direction))) / 2)
    order = np.argsort(deviation)
    cumulative = np.cumsum(w4[order]) / w4.sum()

    def quantile(f):
        return float(deviation[order][min(np.searchsorted(cumulative, f), len(order) - 1)])

    return [spread(z15, pixels), spread(z25, pixels), spread(z4, pixels),
            spread(z4, pixels, 0.5),
            float(np.average(np.abs(z15[pixels]) / (t15[pixels] + 1e-12),
                             weights=np.abs(z15[pixels]) + 1e-12)),
            float(np.average(w4 / (t4[pixels] + 1e-12), weights=w4 + 1e-12)),
            quantile(0.5), quantile(0.75), quantile(0.9),
            float(np.average(deviation > 10, weights=w4)),
            float(np.average(deviation > 20, weights=w4)),
            spread(z15, zdiscs), spread(z15, other), spread(z15, zdiscs, 0.0)]


def segmented_field(split: str, index: int, model):
    """Field ``index`` of ``split`` as ``castream train-cells`` sees it: ``(field, plane,
    labels, rows, image, classes)`` — the plane (maximum projection of a z-stack), the
    engine's candidates and their measured rows, the normalized image the cells networks
    see and the pattern net's classes at full resolution."""
    from engine.cells.analyze import measure_candidates
    from engine.cells.features import field_levels
    from engine.cells.patterns import STRIDE, normalized
    from engine.cells.segment import segment_candidates
    from offline.cellstruct.dataset import simulate

    field = simulate(split, index)
    plane = (field.image.max(axis=0) if field.image.ndim == 3 else field.image)
    plane = plane.astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um)
    rows, _ = measure_candidates(plane, labels, field.pixel_um, model)
    background, foreground = field_levels(plane, labels)
    image = normalized(plane, background, foreground - background)
    classes = model.pattern_classes(image)
    full = np.repeat(np.repeat(classes, STRIDE, 0), STRIDE, 1)[:plane.shape[0], :plane.shape[1]]
    full = np.pad(full, [(0, a - b) for a, b in zip(plane.shape, full.shape, strict=True)],
                  mode="edge")
    return field, plane, labels, rows, image, full


def dump(split: str, first: int, stop: int, model_dir: str, out: Path) -> None:
    """True cells of fields ``first``…``stop - 1`` of ``split``: v4 features, targets,
    realized spread and the extra cues (one .npz)."""
    import torch

    from engine.cells.features import FEATURE_NAMES
    from engine.cells.model import CellsModel
    from offline.cellstruct.dataset import match_truth

    torch.set_num_threads(1)
    model = CellsModel.load(model_dir)
    rows_out, extra, targets = [], [], []
    for index in range(first, stop):
        field, plane, labels, rows, _, full = segmented_field(split, index, model)
        for row in rows:
            mask = labels == row["cell_id"]
            match = match_truth(mask, field)
            if not match["is_cell"]:
                continue
            truth = match["truth"]
            r0, c0, r1, c1 = row["bbox"]
            rows_out.append([row[n] for n in FEATURE_NAMES])
            extra.append(extra_cues(plane[r0:r1, c0:c1], mask[r0:r1, c0:c1],
                                    full[r0:r1, c0:c1], field.pixel_um))
            targets.append([match["structure_score"], match["sarcomerisation"],
                            match["directionality"], match["source_index"], match["iou"],
                            truth["angle_spread_deg"], index])
        log.info("%s field %d: %d cells so far", split, index, len(targets))
    np.savez(out, features=np.array(rows_out, float), extra=np.array(extra, float),
             targets=np.array(targets, float), names=np.array(FEATURE_NAMES + EXTRA))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="true cells of simulated fields with the extra cues")
    d.add_argument("--split", choices=("train", "val"), required=True)
    d.add_argument("--fields", type=int, nargs=2, metavar=("FIRST", "STOP"), required=True)
    d.add_argument("--model", default="engine/models/default/cells")
    d.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("cv", help="5-fold cross-validation by field")
    source = c.add_mutually_exclusive_group(required=True)
    source.add_argument("--dumps", type=Path, nargs="+")
    source.add_argument("--candidates", type=Path, nargs="+",
                        help="castream train-cells candidate caches (train[-randomized]-*.npz "
                             "of training fields, val-*.npz) instead of dumps: true cells, the "
                             "packaged features, no extra cues (configs base and h128)")
    c.add_argument("--extra", type=Path, nargs="*", default=[])
    c.add_argument("--pool-fields", type=int, default=240,
                   help="with --candidates: training fields 0..N-1 and the validation fields "
                        "are cross-validated")
    c.add_argument("--train-fields", type=int, nargs="+",
                   help="with --candidates: one row per number of training fields; fields "
                        "pool..N-1 are added to every fold's training side (default: the pool)")
    c.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="heads per fold, one per seed; figures of their averaged outputs")
    c.add_argument("--configs", nargs="+", default=["base"], choices=sorted(CONFIGS))
    c.add_argument("--errors", action="store_true", help="also where the errors are")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "dump":
        dump(args.split, *args.fields, args.model, args.out)
        return 0
    runs = []
    if args.candidates:
        for n in args.train_fields or [args.pool_fields]:
            x, t, names, extra = candidates_sets(args.candidates, args.pool_fields, n)
            runs += [(f"{config} train_fields {n}", x, t, names, extra, config)
                     for config in args.configs]
    else:
        x, t, names = _load(args.dumps)
        extra = _load(args.extra)[:2] if args.extra else None
        runs = [(config, x, t, names, extra, config) for config in args.configs]
    for label, x, t, names, extra, config in runs:
        result = cross_validate_arrays(x, t, names, extra, config, tuple(args.seeds))
        sys.stdout.write(f"{label} " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in result.items() if not k.startswith("_")) + "\n")
        if args.errors and "coh15" in names:
            sys.stdout.write(error_breakdown(result) + "\n")
        elif args.errors:
            sys.stdout.write("--errors needs dumps (the coh15 cue)\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
