"""Simulated structure images of cardiomyocytes (Z-disc marker), with ground truth.

``simulate_structure_field(StructureFieldParams(...), seed)`` returns a
:class:`StructureField`: a uint16 image ``(Y, X)`` or z-stack ``(Z, Y, X)`` of an
alpha-actinin-like stain at 0.1–0.2 µm/px, the object label image, a per-pixel map of the
local pattern and one ground-truth row per object. It is separate from the Ca²⁺ event
simulator (:mod:`acquisition.simulate`) and seeded (independent streams for layout,
patterns, detector noise and raters).

Objects
-------
* **Cardiomyocytes** of three sources: adult rods (60–110 × 14–24 µm, stepped ends; Bers 2001
  *Excitation-contraction coupling*, ch. 1), neonatal-like polygonal cells (18–32 µm) and
  hiPSC-CM-like spread, lobed cells (24–44 µm; Gerbin et al. 2021 Cell Systems, the Allen
  Cell hiPSC-CM images). Cells may touch (placed against an earlier cell, cut at contact).
* **Non-cell candidates** (DeGuire et al.: 40–90 % of a segmenter's candidates are not
  cells): debris, out-of-focus cardiomyocytes (4–8 µm from focus), fibroblast-like spindles
  with stress fibres but no sarcomeres, dead rounded cells with a bright rim. Fragments and
  merged neighbours come from the segmentation itself.

Patterns (:mod:`.patterns`)
---------------------------
Myofibrils follow a per-cell orientation field (Voronoi domains whose directions scatter
around the main one); Z-discs cross them at the sarcomere length (adult 1.85–2.1 µm,
neonatal 1.7–2.0, hiPSC 1.7–1.95; Bray et al. 2008; Lundy et al. 2013), 0.1 µm thick before
the PSF (Gaussian, FWHM ≈ 0.28 µm). Beaded rows (organized puncta, premyofibrils; Sanger et
al. 2005), scattered z-bodies (disorganized puncta), non-periodic fibres, diffuse
cytoplasm and a dim nucleus. The hidden organisation ``o`` (1–5) sets the pattern area
fractions along Gerbin et al.'s expert scale: 1 sparse disorganized puncta, 2 denser puncta
in beaded rows, 3 a mix of puncta, fibres and Z-disc patches, 4 regular Z-discs in domains
of different directions, 5 aligned Z-discs across the cell.

Labels
------
``structure_score`` is the mean of two raters' integer ratings, each the rounded hidden
organisation plus N(0, ``rater_noise_sd``) (Gerbin et al. averaged two experts).
``sarcomerisation`` (1–4) rates the area fraction of Z-discs plus half the beaded rows,
``directionality`` (1–4) the spread of the rendered myofibril directions over the cell's
oriented pixels (1 when under 10 % is oriented; AMES, Hillemanns et al.).
``cell_source`` is ``adult``, ``neonatal`` or ``ipsc``.

Imaging
-------
Defocus blur and dimming per object and focal plane (z-stacks at ``z_step_um``), the PSF,
uneven illumination (smooth quadratic, ±15 % by default), shot noise, read noise and a
camera offset. :meth:`RenderStyle.variant` is a second generator with another PSF (core +
halo), noise level and pattern statistics, for validation only; :meth:`RenderStyle.randomized`
draws a training field's choices from ranges around the default that stop short of the
variant's (domain randomization; ranges and sources in :mod:`.params`).
``StructureFieldParams.depth_clutter_probability`` (off by default) puts out-of-plane clutter
(fibroblast-like processes, a neighbour's edge, debris) in thin layers above or below cells,
which a maximum projection superimposes on the cell and a z-stack separates (:mod:`.clutter`).
"""

from .field import StructureField, simulate_structure_field
from .params import (
    CELL_SOURCES,
    OBJECT_KINDS,
    PATTERN_CLASSES,
    RANDOMIZED_RANGES,
    RenderStyle,
    StructureFieldParams,
)

__all__ = ["CELL_SOURCES", "OBJECT_KINDS", "PATTERN_CLASSES", "RANDOMIZED_RANGES", "RenderStyle",
           "StructureField", "StructureFieldParams", "simulate_structure_field"]
