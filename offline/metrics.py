"""Segmentation and event-detection metrics (Dotti et al. 2024, Tables 2 and 3).

* Pixel IoU per class and binarized (any event vs background), ignoring label 4.
* Instance matching by IoMin = |A∩B| / min(|A|, |B|) ≥ 0.5.
* Table 2: annotated → predicted class matches (+ undetected); predicted → annotated class
  matches (+ unmatched).
* Table 3: % detected (recall), % correct (precision), F1 per class and their average.

The characterization errors of matched events are in :mod:`offline.characterization_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from acquisition.labels import BACKGROUND, CLASS_IDS, CLASS_NAMES, IGNORE

EVENT_CLASSES = ("spark", "wave", "puff")
IOMIN_THRESHOLD = 0.5


def pixel_counts(
    true_class: np.ndarray, pred_class: np.ndarray, ignore: int = IGNORE
) -> dict[str, tuple[int, int]]:
    """(intersection, union) pixel counts per class and binarized ("event" vs background).

    Pixels labelled ``ignore`` in ``true_class`` are excluded. Sum the counts over recordings
    and divide (:func:`iou_from_counts`) for a pooled IoU.
    """
    if true_class.shape != pred_class.shape:
        raise ValueError(f"shape mismatch {true_class.shape} vs {pred_class.shape}")
    valid = true_class != ignore
    t, p = true_class[valid], pred_class[valid]
    out = {name: _overlap(t == cid, p == cid) for cid, name in CLASS_NAMES.items()}
    out["event"] = _overlap(t != BACKGROUND, p != BACKGROUND)
    return out


def iou_from_counts(counts: Mapping[str, tuple[int, int]]) -> dict[str, float]:
    """IoU per class from (intersection, union) counts; NaN where the union is empty."""
    return {k: (i / u if u else float("nan")) for k, (i, u) in counts.items()}


def pixel_iou(
    true_class: np.ndarray, pred_class: np.ndarray, ignore: int = IGNORE
) -> dict[str, float]:
    """IoU per class (spark, wave, puff, background) and binarized ("event" vs background);
    ``ignore`` pixels excluded, NaN for a class absent from both masks."""
    return iou_from_counts(pixel_counts(true_class, pred_class, ignore))


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(a & b)), int(np.count_nonzero(a | b))


def instance_classes(instance_mask: np.ndarray, class_mask: np.ndarray) -> dict[int, str]:
    """Class name of each instance: the most frequent event class among its pixels."""
    ids = instance_mask.ravel()
    classes = class_mask.ravel()
    keep = (ids > 0) & (classes >= 1) & (classes <= 3)
    out: dict[int, str] = {}
    if not keep.any():
        return out
    pairs, counts = np.unique(np.stack([ids[keep], classes[keep]]), axis=1, return_counts=True)
    best: dict[int, int] = {}
    for (iid, cid), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if n > best.get(iid, -1):
            best[iid] = n
            out[iid] = CLASS_NAMES[cid]
    return out


@dataclass
class Matching:
    """Overlaps between annotated and predicted instances.

    ``pairs`` maps (true_id, pred_id) → (intersection_px, iomin) for every pair with
    IoMin ≥ threshold.
    """

    true_classes: dict[int, str]
    pred_classes: dict[int, str]
    pairs: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)

    def pred_of(self, true_id: int) -> list[int]:
        return [p for (t, p) in self.pairs if t == true_id]

    def true_of(self, pred_id: int) -> list[int]:
        return [t for (t, p) in self.pairs if p == pred_id]


def match_instances(
    true_instances: np.ndarray,
    true_classes: Mapping[int, str],
    pred_instances: np.ndarray,
    pred_classes: Mapping[int, str],
    ignore_mask: np.ndarray | None = None,
    threshold: float = IOMIN_THRESHOLD,
) -> Matching:
    """Match instances by IoMin ≥ ``threshold``.

    Predicted instances lying mostly (≥ 50 %) in ``ignore_mask`` are dropped, as are ids
    without a class.
    """
    pred = pred_instances.astype(np.int64, copy=True)
    if ignore_mask is not None:
        pred = _drop_ignored(pred, ignore_mask)
    t = true_instances.astype(np.int64).ravel()
    p = pred.ravel()
    t_sizes = np.bincount(t)
    p_sizes = np.bincount(p)
    both = (t > 0) & (p > 0)
    width = int(p.max(initial=0)) + 1
    codes, inter = np.unique(t[both] * width + p[both], return_counts=True)
    keep_t = {k: v for k, v in true_classes.items() if k < len(t_sizes) and t_sizes[k] > 0}
    keep_p = {k: v for k, v in pred_classes.items() if k < len(p_sizes) and p_sizes[k] > 0}
    matching = Matching(dict(keep_t), dict(keep_p))
    for code, n in zip(codes.tolist(), inter.tolist(), strict=True):
        tid, pid = divmod(code, width)
        if tid not in keep_t or pid not in keep_p:
            continue
        iomin = n / min(t_sizes[tid], p_sizes[pid])
        if iomin >= threshold:
            matching.pairs[(tid, pid)] = (n, float(iomin))
    return matching


def one_to_one_counts(matching: Matching) -> dict[str, list[int]]:
    """``{class: [matched, n_annotated, n_predicted]}`` when each annotated and each predicted
    event may be matched once (greedy, largest overlap first, same class only).

    The IoMin matching lets one predicted event match several annotated ones (two sparks of a
    pair merged into one event count as both found) and several fragments of one event count
    as correct; this count does neither, so it sees merged pairs and over-splitting.
    """
    used_t: set[int] = set()
    used_p: set[int] = set()
    matched = dict.fromkeys(EVENT_CLASSES, 0)
    ranked = sorted(matching.pairs.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    for (tid, pid), _ in ranked:
        cls = matching.true_classes[tid]
        if tid in used_t or pid in used_p or matching.pred_classes[pid] != cls:
            continue
        used_t.add(tid)
        used_p.add(pid)
        matched[cls] += 1
    return {cls: [matched[cls], sum(c == cls for c in matching.true_classes.values()),
                  sum(c == cls for c in matching.pred_classes.values())]
            for cls in EVENT_CLASSES}


def one_to_one_scores(counts: Mapping[str, list[int]]) -> dict[str, dict[str, float]]:
    """Recall, precision and F1 per class from :func:`one_to_one_counts` (pooled)."""
    out = {}
    for cls, (hit, n_true, n_pred) in counts.items():
        recall = hit / n_true if n_true else float("nan")
        precision = hit / n_pred if n_pred else float("nan")
        out[cls] = {"recall": recall, "precision": precision,
                    "f1": _f1(recall, precision, n_true, n_pred)}
    return out


def _drop_ignored(pred: np.ndarray, ignore_mask: np.ndarray) -> np.ndarray:
    flat = pred.ravel()
    sizes = np.bincount(flat)
    in_ignore = np.bincount(flat[ignore_mask.ravel()], minlength=len(sizes))
    drop = np.flatnonzero((in_ignore >= 0.5 * sizes) & (sizes > 0))
    drop = drop[drop > 0]
    if drop.size:
        pred = np.where(np.isin(pred, drop), 0, pred)
    return pred


def recall_by_subtype(matching: Matching, subtypes: Mapping[int, str]) -> dict[str, list[int]]:
    """``{subtype: [found, total, found_once]}`` over the annotated events that have a subtype.

    An annotated event is found when any predicted event, of any class, matches it (IoMin ≥
    the matching's threshold); *found once* when it is also matched with each predicted event
    used at most once (greedy, largest overlap first, any class): two sparks of a pair merged
    into one predicted event are both found but only one of them found once. Events without
    pixels (not in ``matching.true_classes``) are not counted.
    """
    matched = {t for (t, _) in matching.pairs}
    once = _matched_once(matching)
    out: dict[str, list[int]] = {}
    for tid in matching.true_classes:
        if tid not in subtypes:
            continue
        counts = out.setdefault(subtypes[tid], [0, 0, 0])
        counts[0] += tid in matched
        counts[1] += 1
        counts[2] += tid in once
    return out


def _matched_once(matching: Matching) -> set[int]:
    """Annotated ids matched when each annotated and each predicted event is used at most once
    (greedy, largest overlap first, any class)."""
    used_t: set[int] = set()
    used_p: set[int] = set()
    for (tid, pid), _ in sorted(matching.pairs.items(),
                                key=lambda kv: (-kv[1][0], -kv[1][1], kv[0])):
        if tid not in used_t and pid not in used_p:
            used_t.add(tid)
            used_p.add(pid)
    return used_t


def confusion_tables(matching: Matching) -> dict[str, dict[str, dict[str, int]]]:
    """Dotti Table 2.

    Returns ``{"annotated": {cls: {spark, wave, puff, undetected, total}},
    "predicted": {cls: {spark, wave, puff, unmatched, total}}}``; an event matched by events of
    several classes counts once in each of them.
    """
    annotated = {c: dict.fromkeys((*EVENT_CLASSES, "undetected", "total"), 0) for c in EVENT_CLASSES}
    predicted = {c: dict.fromkeys((*EVENT_CLASSES, "unmatched", "total"), 0) for c in EVENT_CLASSES}
    _fill_rows(annotated, matching.true_classes, matching.pred_of, matching.pred_classes, "undetected")
    _fill_rows(predicted, matching.pred_classes, matching.true_of, matching.true_classes, "unmatched")
    return {"annotated": annotated, "predicted": predicted}


def _fill_rows(table, classes, partners_of, partner_classes, miss_key) -> None:
    for iid, cls in classes.items():
        if cls not in table:
            continue
        row = table[cls]
        row["total"] += 1
        partner_kinds = {partner_classes[j] for j in partners_of(iid)}
        if not partner_kinds:
            row[miss_key] += 1
        for kind in partner_kinds & set(EVENT_CLASSES):
            row[kind] += 1


def detection_scores(tables: Mapping[str, Mapping[str, Mapping[str, int]]]) -> dict[str, dict]:
    """Dotti Table 3 from Table 2: recall ("detected"), precision ("correct"), F1 per class.

    Classes with neither annotated nor predicted events are left out of the average.
    """
    out: dict[str, dict] = {}
    f1s = []
    for cls in EVENT_CLASSES:
        ann, pred = tables["annotated"][cls], tables["predicted"][cls]
        recall = ann[cls] / ann["total"] if ann["total"] else float("nan")
        precision = pred[cls] / pred["total"] if pred["total"] else float("nan")
        f1 = _f1(recall, precision, ann["total"], pred["total"])
        out[cls] = {"recall": recall, "precision": precision, "f1": f1,
                    "n_true": ann["total"], "n_pred": pred["total"]}
        if not np.isnan(f1):
            f1s.append(f1)
    out["average"] = {"f1": float(np.mean(f1s)) if f1s else float("nan")}
    return out


def _f1(recall: float, precision: float, n_true: int, n_pred: int) -> float:
    if n_true == 0 and n_pred == 0:
        return float("nan")
    r = 0.0 if np.isnan(recall) else recall
    p = 0.0 if np.isnan(precision) else precision
    return 2 * p * r / (p + r) if (p + r) > 0 else 0.0


def f1_intervals(tables: Sequence[Mapping], n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Per class, the ``level`` percentile interval of the pooled F1 when the recordings
    (``tables``: one Table 2 per recording) are drawn again with replacement ``n_boot`` times.

    The recording is the unit that varies (cell, calibration, noise, how many events it holds),
    so this is how much a figure on this many recordings can move with other recordings of the
    same generator: a test set of 12 recordings gives a wide interval. Classes with no event in
    any recording are left out; draws without an event of the class are skipped.
    """
    if len(tables) < 2:
        return {}
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[float, float]] = {}
    for cls in EVENT_CLASSES:
        # per recording: true found, true total, predicted correct, predicted total
        counts = np.array([(t["annotated"][cls][cls], t["annotated"][cls]["total"],
                            t["predicted"][cls][cls], t["predicted"][cls]["total"])
                           for t in tables], np.float64)
        if not counts[:, [1, 3]].any():
            continue
        drawn = counts[rng.integers(0, len(tables), (n_boot, len(tables)))].sum(axis=1)
        f1 = np.array([_f1(found / n_true if n_true else math.nan,
                           correct / n_pred if n_pred else math.nan, n_true, n_pred)
                       for found, n_true, correct, n_pred in drawn])
        tail = (1.0 - level) / 2 * 100
        lo, hi = np.percentile(f1[np.isfinite(f1)], [tail, 100 - tail])
        out[cls] = (float(lo), float(hi))
    return out


def add_tables(a: dict, b: dict) -> dict:
    """Sum two Table-2 dicts (to pool recordings)."""
    return {side: {cls: {k: a[side][cls][k] + b[side][cls][k] for k in a[side][cls]}
                   for cls in a[side]} for side in a}


def class_mask_from_instances(instances: np.ndarray, classes: Mapping[int, str]) -> np.ndarray:
    """Dotti class mask (uint8) from an instance mask and a class per instance id."""
    lut = np.zeros(int(instances.max(initial=0)) + 1, dtype=np.uint8)
    for iid, cls in classes.items():
        if 0 < iid < len(lut):
            lut[iid] = CLASS_IDS[cls]
    return lut[instances]
