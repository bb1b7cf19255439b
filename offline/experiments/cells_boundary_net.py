"""A learned boundary between touching cells (issue 13, segmentation; a probe, not part of
any model).

The packaged segmenter splits touching cells only at a neck, and the split between nuclei
failed its rule (docs/CELLS.md, "Touching cells split between their nuclei"). This trains
the pattern net's body (stride-2 stem, dilated 3×3 convolutions up to 16, width 24) to
classify each half-resolution pixel as background, object interior or the seam between two
different objects (pixels within ``SEAM_UM`` of a pixel of another object; the simulator's
object labels), with class-balanced cross-entropy, quarter turns and flips; patches of 96 ×
96 px of training fields (randomized rendering), 60 % centred on a seam.

``python -m offline.experiments.cells_boundary_net train --fields 240 --val-fields 30 --out
build/boundary-net.pt`` (training fields 0–239, 240–269 pick the epoch), then ``python -m
offline.experiments.cells_boundary_net probe --net build/boundary-net.pt --fields 0 60``: on
validation fields, every candidate of the packaged segmenter is cut along the predicted
seam (seeds: connected parts of the candidate where the seam probability is under
``--seed-below``, at least 40 µm²; a watershed on the seam probability), and it counts the
true cells with a candidate at IoU ≥ 0.5 and the true cells cut in two (two pieces each over
20 % of the cell), before and after; ``--pixel-fields N`` also prints the seam's pixel
figures on the first N validation fields.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from offline.experiments.cells_direction_net import add_train_arguments, train_and_save

log = logging.getLogger(__name__)

STRIDE = 2
SEAM_UM = 0.6
MIN_PART_UM2 = 40.0
#: seeds of the cut: the h-maxima (``NECK_H_UM``) of the distance transform of the candidate
#: less its predicted seam (True), or the seam-free parts themselves (False)
SEED_BY_NECK = False
NECK_H_UM = 2.0


def targets(labels: np.ndarray, pixel_um: float) -> np.ndarray:
    """0 background, 1 interior, 2 seam (within ``SEAM_UM`` of another object's pixel)."""
    from scipy import ndimage

    radius = max(1, int(round(SEAM_UM / pixel_um)))
    grown_max = ndimage.maximum_filter(labels, size=2 * radius + 1)
    masked = np.where(labels > 0, labels, np.iinfo(np.int32).max)
    grown_min = ndimage.minimum_filter(masked, size=2 * radius + 1)
    seam = (labels > 0) & ((grown_max != labels) | (grown_min != labels))
    seam &= ndimage.maximum_filter(labels > 0, size=2 * radius + 1)
    # only where another *object* is near (not the background edge)
    other = (grown_max > labels) | ((grown_min < labels) & (grown_min > 0))
    out = np.where(labels > 0, 1, 0).astype(np.int64)
    out[seam & other] = 2
    return out


def field_patches(index: int, first: int, per_field: int = 24) -> tuple[np.ndarray, np.ndarray]:
    from offline.cellstruct.patterns import normalized_field, patch_windows

    field, image = normalized_field("train", first + index, "randomized")
    target = targets(field.labels, field.pixel_um)
    rng = np.random.default_rng([first + index, 7])
    seams = np.argwhere(target == 2)
    windows = patch_windows(rng, seams if seams.size else np.argwhere(field.labels > 0),
                            image.shape, per_field, 0.6)
    xs = [image[w][None] for w in windows]
    ys = [target[w][::STRIDE, ::STRIDE] for w in windows]
    return np.stack(xs), np.stack(ys)


def data(first: int, n_fields: int, workers: int):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(field_patches, range(n_fields), [first] * n_fields))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _net():
    """The direction net's body with three classes out (background, interior, seam)."""
    import torch

    from offline.experiments.cells_direction_net import _net as body

    net = body(24)
    net.body[-1] = torch.nn.Conv2d(24, 3, 1)
    return net


def train(train_data, val_data, epochs: int, seed: int = 0, batch: int = 16):
    import torch

    from offline.cellstruct.train import _augment_dims, fit_best

    torch.manual_seed(seed)
    net = _net()
    x_tr, y_tr = (torch.from_numpy(a) for a in train_data)
    x_va, y_va = (torch.from_numpy(a) for a in val_data)
    counts = torch.bincount(y_tr.ravel(), minlength=3).float()
    weight = (counts.sum() / (counts + 1)) ** 0.5
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight / weight.mean())

    def batch_loss(idx, generator):
        # the same quarter turn and flip for the image and its half-resolution target
        seed_k = int(torch.randint(0, 1 << 30, (1,), generator=generator))
        x = _augment_dims(x_tr[idx], torch.Generator().manual_seed(seed_k), (2, 3))
        y = _augment_dims(y_tr[idx][:, None], torch.Generator().manual_seed(seed_k),
                          (2, 3))[:, 0]
        return loss_fn(net(x), y)

    def val_loss():
        return sum(loss_fn(net(x_va[i:i + 64]), y_va[i:i + 64]) * len(x_va[i:i + 64])
                   for i in range(0, len(x_va), 64)) / len(x_va)

    return fit_best(net, batch_loss, val_loss, len(x_tr), epochs, 3e-3, seed, batch,
                    "boundary net", cosine=True)


def load(path: str):
    import torch

    net = _net()
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


def seam_probability(net, image: np.ndarray) -> np.ndarray:
    """Seam probability at full resolution (nearest) of a normalized field image."""
    import torch

    with torch.inference_mode():
        probs = torch.softmax(net(torch.from_numpy(image[None, None].astype(np.float32))), 1)
    seam = probs[0, 2].numpy()
    full = np.repeat(np.repeat(seam, STRIDE, 0), STRIDE, 1)
    return full[: image.shape[0], : image.shape[1]]


def cut_along_seams(labels: np.ndarray, seam: np.ndarray, pixel_um: float,
                    seed_below: float) -> np.ndarray:
    """Every candidate cut where the predicted seam divides it into parts of at least
    ``MIN_PART_UM2`` (seeds: the candidate's parts with seam probability under
    ``seed_below``; a watershed on the seam probability)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    out = labels.copy()
    next_id = int(labels.max()) + 1
    min_part = MIN_PART_UM2 / pixel_um ** 2
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == index
        kept = mask & (seam[box] < seed_below)
        if SEED_BY_NECK:  # a seam with gaps still leaves a neck: seeds as the segmenter's
            from skimage.morphology import h_maxima

            distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(kept) * pixel_um,
                                               0.5 / pixel_um)
            seeds, n = ndimage.label(h_maxima(distance, NECK_H_UM) & kept)
        else:
            seeds, n = ndimage.label(kept)
        if n < 2:
            continue
        sizes = np.bincount(seeds.ravel())
        keep = np.arange(1, n + 1) if SEED_BY_NECK else np.flatnonzero(sizes >= min_part)
        keep = keep[keep > 0]
        if len(keep) < 2:
            continue
        markers = np.zeros_like(seeds)
        for j, k in enumerate(keep, start=1):
            markers[seeds == k] = j
        parts = watershed(seam[box], markers, mask=mask)
        if np.bincount(parts.ravel(), minlength=len(keep) + 1)[1:].min() < min_part:
            continue
        view = out[box]
        for part in range(2, len(keep) + 1):
            view[parts == part] = next_id
            next_id += 1
    return out


def _counts(labels: np.ndarray, cells: np.ndarray) -> tuple[int, int]:
    found = cut = 0
    for t in np.unique(cells[cells > 0]):
        tm = cells == t
        ids, counts = np.unique(labels[tm], return_counts=True)
        best = max([n / (tm.sum() + (labels == i).sum() - n)
                    for i, n in zip(ids, counts, strict=True) if i] or [0])
        found += best >= 0.5
        cut += int(np.sum((ids > 0) & (counts > 0.2 * tm.sum())) >= 2)
    return found, cut


def _probe_field(index: int, net_path: str, seed_below: tuple[float, ...]) -> list:
    import torch

    from engine.cells.segment import segment_candidates
    from offline.cellstruct.patterns import normalized_field

    torch.set_num_threads(1)
    field, image = normalized_field("val", index)
    plane = (field.image.max(axis=0) if field.image.ndim == 3 else field.image).astype(np.float32)
    labels = segment_candidates(plane, field.pixel_um)
    cells = field.cell_labels()
    seam = seam_probability(load(net_path), image)
    rows = [(labels.max(), *_counts(labels, cells), len(np.unique(cells[cells > 0])))]
    for threshold in seed_below:
        cut = cut_along_seams(labels, seam, field.pixel_um, threshold)
        rows.append((len(np.unique(cut)) - 1, *_counts(cut, cells),
                     len(np.unique(cells[cells > 0]))))
    return rows


def seam_pixels(net_path: str, n_fields: int, thresholds=(0.3, 0.5, 0.7)) -> list[str]:
    """Pixel figures of the seam on validation fields 0 … n − 1: the share of true seam
    pixels above each threshold and of interior pixels above it."""
    from offline.cellstruct.patterns import normalized_field

    net = load(net_path)
    seam_values, interior_values = [], []
    for index in range(n_fields):
        field, image = normalized_field("val", index)
        truth = targets(field.labels, field.pixel_um)
        probability = seam_probability(net, image)
        seam_values.append(probability[truth == 2])
        interior_values.append(probability[truth == 1])
    seam, interior = np.concatenate(seam_values), np.concatenate(interior_values)
    return [f"seam probability > {t:g}: {100 * np.mean(seam > t):.1f} % of {seam.size} seam "
            f"pixels, {100 * np.mean(interior > t):.2f} % of {interior.size} interior pixels"
            for t in thresholds]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub, 240, 16)
    p = sub.add_parser("probe")
    p.add_argument("--net", required=True)
    p.add_argument("--fields", type=int, nargs=2, default=(0, 60))
    p.add_argument("--seed-below", type=float, nargs="+", default=[0.3, 0.5])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pixel-fields", type=int, default=0,
                   help="also the seam's pixel figures on this many validation fields")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "train":
        return train_and_save(args, data, lambda tr, va: train(tr, va, args.epochs))
    from concurrent.futures import ProcessPoolExecutor

    indices = range(*args.fields)
    with ProcessPoolExecutor(args.workers) as pool:
        results = np.array(list(pool.map(_probe_field, indices, [args.net] * len(indices),
                                          [tuple(args.seed_below)] * len(indices))))
    for k, name in enumerate(["packaged", *(f"cut at seams, seeds under {s:g}"
                                            for s in args.seed_below)]):
        r = results[:, k].sum(axis=0)
        log.info("%s: %d candidates, %d / %d true cells with a candidate at IoU >= 0.5, "
                 "%d cut in two", name, r[0], r[1], r[3], r[2])
    for line in seam_pixels(args.net, args.pixel_fields) if args.pixel_fields else []:
        log.info("%s", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
