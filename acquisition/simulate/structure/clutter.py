"""Out-of-plane clutter over or under a cardiomyocyte (option, off by default).

Why
---
In this generator a cardiomyocyte is one slab in focus over its thickness, so every plane of
a z-stack shows the same Z-disc pattern and a stack holds nothing its maximum projection
lacks (docs/CELLS.md, "Z-stacks"). Cultures are not that clean. Cardiomyocyte cultures hold
non-myocytes: hPSC-CM differentiations are purified because they are not pure (e.g. the
metabolic selection of Tohyama et al. 2013, Cell Stem Cell), and primary neonatal cultures
are pre-plated to remove fibroblasts (common practice; no figure is taken from a source
here). Their thin lamellae spread over and under cardiomyocytes, neighbouring cells overlap
at their edges, and debris of dead cells settles on the monolayer. In a Z-disc stain these
show as fibres, striations or granules, as the simulator's fibroblasts and debris already
do (issue 13's non-cell candidates); caveat: a pan-alpha-actinin antibody also stains the
non-muscle isoforms (alpha-actinin-1 and -4) of stress fibres, a sarcomere-specific
antibody or an ACTN2 reporter line would show fibroblast processes dimmer than drawn here.
A maximum projection superimposes such clutter on the cell's own pattern, whereas the cell's
planes away from it are cleaner: sectioning separates structures about a micrometre apart in
depth (Pawley 2006, Handbook of Biological Confocal Microscopy), a projection does not.

What
----
With ``StructureFieldParams.depth_clutter_probability = p > 0`` each cardiomyocyte gets,
with probability ``p``, one or two thin layers (``CLUTTER_THICKNESS_UM``) at a depth of
``CLUTTER_DEPTH_UM`` above or below the focal plane (inside a 5-plane stack 0.5 µm apart,
which spans ±1 µm, so one end plane holds the clutter nearly in focus and the other end
plane sees it blurred and dimmed by 1.5–2.25 µm of defocus), each one of:

* ``process`` – a fibroblast-like lamella: diffuse signal with non-periodic stress fibres at
  a random angle (:func:`.patterns.render_fibroblast`);
* ``neighbour`` – a neighbouring cardiomyocyte's edge: its own myofibrils, Z-discs and
  puncta at its own direction and organisation (:func:`.patterns.render_cardiomyocyte`);
* ``debris`` – a few bright granular clumps (:func:`.patterns.render_blob`).

A layer covers a smooth random part (``CLUTTER_COVER``) of the cell and is drawn only over
the cell's own mask, so the label image, the pattern map and every truth field of the cell
(score, ratings, source, sarcomere length) keep their meaning: they describe the cell, not
what lies above it. This is a simplification (a real process continues beyond the cell);
it keeps the segmentation's candidates comparable with and without clutter, so what changes
is what the heads see. The cell's truth row gets ``clutter`` (the layers' kinds) only when
the option is on. The clutter has its own random stream (the fifth child of the field's
seed), so the layout, patterns and raters of a field are those of the same seed without
clutter, and with ``p = 0`` (the default) nothing is drawn and every field is bit-identical
to the generator without this option.
"""

from __future__ import annotations

import numpy as np

from . import patterns, shapes
from .params import StructureFieldParams

CLUTTER_KINDS = ("process", "neighbour", "debris")
#: |depth| of a clutter layer's centre from the focal plane (µm), uniform
CLUTTER_DEPTH_UM = (0.75, 1.5)
CLUTTER_THICKNESS_UM = 0.5
#: share of the cell a layer covers, uniform
CLUTTER_COVER = (0.3, 0.7)
#: brightness of a layer relative to its rendered signal, uniform
CLUTTER_GAIN = (0.7, 1.3)
#: index of the clutter's stream among the children of the field's SeedSequence
CLUTTER_STREAM = 4


def clutter_rng(seed: int) -> np.random.Generator:
    """The clutter's own random stream of a field's ``seed`` (independent of the others)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(CLUTTER_STREAM + 1)[-1])


def clutter_layers(rng: np.random.Generator, cell_mask: np.ndarray, y: int, x: int,
                   params: StructureFieldParams) -> tuple[list[tuple], list[str]]:
    """Layers ``(y, x, signal, z_um, thickness_um)`` over or under one cell (its ``cell_mask``
    placed with top-left corner ``(y, x)``) and their kinds; none with probability
    ``1 - params.depth_clutter_probability``."""
    if not cell_mask.any() or rng.random() >= params.depth_clutter_probability:
        return [], []
    layers, kinds = [], []
    for _ in range(int(rng.integers(1, 3))):
        kind = str(rng.choice(CLUTTER_KINDS))
        cover = _cover(rng, cell_mask, params.pixel_um)
        signal = _signal(rng, kind, cover, params) * cover * rng.uniform(*CLUTTER_GAIN)
        z_um = float(rng.choice([-1.0, 1.0]) * rng.uniform(*CLUTTER_DEPTH_UM))
        layers.append((y, x, signal.astype(np.float32), z_um, CLUTTER_THICKNESS_UM))
        kinds.append(kind)
    return layers, kinds


def _cover(rng, cell_mask: np.ndarray, pixel_um: float) -> np.ndarray:
    """A smooth random part of the cell (share drawn from :data:`CLUTTER_COVER`)."""
    values = patterns.smooth_noise(rng, cell_mask.shape, 4.0 / pixel_um)
    share = rng.uniform(*CLUTTER_COVER)
    return cell_mask & (values >= np.quantile(values[cell_mask], 1.0 - share))


def _signal(rng, kind: str, cover: np.ndarray, params: StructureFieldParams) -> np.ndarray:
    pixel_um, style = params.pixel_um, params.style
    angle = float(rng.uniform(0, 180))
    if kind == "process":
        return patterns.render_fibroblast(rng, cover, angle, pixel_um, style)[0]
    if kind == "neighbour":
        truth = patterns.draw_cell_truth(rng, str(rng.choice(("neonatal", "ipsc"))), angle)
        return patterns.render_cardiomyocyte(rng, cover, truth, pixel_um, style)[0]
    signal = np.zeros(cover.shape, np.float32)
    rows, cols = np.nonzero(cover)
    for _ in range(int(rng.integers(2, 6))):
        clump = shapes.debris(rng, pixel_um)[0]
        k = int(rng.integers(rows.size))
        y0, x0 = rows[k] - clump.shape[0] // 2, cols[k] - clump.shape[1] // 2
        blob = patterns.render_blob(rng, clump, pixel_um, bright_rim=False)[0]
        _paste(signal, blob, y0, x0)
    return signal


def _paste(plane: np.ndarray, patch: np.ndarray, y0: int, x0: int) -> None:
    ys = slice(max(y0, 0), min(y0 + patch.shape[0], plane.shape[0]))
    xs = slice(max(x0, 0), min(x0 + patch.shape[1], plane.shape[1]))
    if ys.stop > ys.start and xs.stop > xs.start:
        plane[ys, xs] = np.maximum(plane[ys, xs], patch[ys.start - y0:ys.stop - y0,
                                                        xs.start - x0:xs.stop - x0])
