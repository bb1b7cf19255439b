"""Bounding boxes of sparse masks, so that work on sparse foreground stays proportional to its
extent (the classical detector's filters, the tracker's labelling)."""

from __future__ import annotations

import numpy as np


def padded_box(mask: np.ndarray, margins: tuple[int, ...]) -> tuple[slice, ...] | None:
    """Bounding box of ``mask``'s True pixels grown by ``margins`` (per axis) and clipped to the
    array; None when ``mask`` is empty. A filter of half-size ≤ margin evaluated on this box
    gives, at the mask's pixels, what it gives on the whole array: the work of the sparse
    foreground stays proportional to its extent."""
    if not mask.any():
        return None
    box = []
    for axis, margin in enumerate(margins):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(0, int(hit[0]) - margin),
                         min(mask.shape[axis], int(hit[-1]) + 1 + margin)))
    return tuple(box)


def grown(box: tuple[slice, ...], low: tuple[int, ...], high: tuple[int, ...],
          shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``low`` before and ``high`` after its start and stop on each axis,
    clipped to an array of ``shape``."""
    return tuple(slice(max(0, b.start - lo), min(n, b.stop + hi))
                 for b, lo, hi, n in zip(box, low, high, shape, strict=True))
