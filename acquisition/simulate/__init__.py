"""Simulated confocal microscope: Ca²⁺ sparks, puffs and waves in a cardiomyocyte, with
ground truth.

``simulate_linescan(LinescanParams(...), seed)`` and ``simulate_movie(MovieParams(...), seed)``
return a :class:`Recording` (uint16 counts with offset, class/instance masks, events table,
noise-free ΔF/F0). Everything is seeded (``np.random.default_rng``; independent streams for the
cell, the events and the detector noise) and deterministic; each event is rendered only in its
bounding box, so a 512 × 20,000-line line-scan or a 64×512×1000 movie takes a few seconds.

Acquisition (defaults)
----------------------
* Line-scan ``(T, X)``: 512 px at 0.14 µm/px, 1.5 ms/line, along the long axis of the cell
  (Yang et al. 2021, Front Physiol: 512-px lines), 5 s.
* Full-frame ``(T, Y, X)``: 64×512 px at 0.2 µm/px, 6.8 ms/frame, 500 frames (Dotti et al.
  2024, Cell Calcium).

Cell (:mod:`.cell`)
-------------------
Myocyte outline (line segment or rounded rectangle) with a logistic edge, dark extracellular
pixels on every side (so the blank can be estimated), striations of 1.8 µm period (sarcomere),
a dimmer nucleus, ±8 % smooth inhomogeneity. Release sites lie on z-lines (Cheng & Lederer
2008), ≥ 1 µm from the edge and outside the nucleus.

Events (:mod:`.events`; intrinsic distributions, log-normal, WT)
-----------------------------------------------------------------
* **Sparks** (Cheng et al. 1993 Science; Cheng & Lederer 2008 Physiol Rev; Picht et al. 2007
  SparkMaster): 4 per 100 µm per s; amplitude ΔF/F0 median 0.6 (log-SD 0.45, observed after
  focus attenuation: mode ≈ 0.4, 90 % within 0.25–1.1); FWHM 1.9 µm (1.2–3.5); release (≈ rise
  10 %→peak) 9 ms (4–25); t50 23 ms (12–70), so FDHM ≈ 29 ms; Gaussian width growing
  ~25 % over the event (diffusion). Spark shape after SparkMaster 2's synthetic sparks (Tomek
  et al. 2023): Gaussian in space × fast rise / exponential decay in time.
* **Puffs / embers** (Dotti et al. 2024 "puff" class): 0.3 per 100 µm per s; amplitude 0.32
  (0.18–0.6); FWHM 4.2 µm (3–6.5); slow plateau-like release 80 ms (35–180); t50 45 ms —
  100–300 ms long.
* **Waves** (Bers 2002 Nature; Cheng & Lederer 2008): 0.02 per cell per s; fronts from a
  z-line site at 95 µm/s (50–150) across the whole cell, amplitude 1.4 (0.9–2.2), rise 25 ms,
  t50 180 ms.
* Movies convert per-100-µm line rates to areal rates: per 100 µm² = line rate / 2 µm
  (the band of cell a line-scan samples).

Phenotypes (:data:`PHENOTYPES`)
-------------------------------
``"wt"`` as above; ``"cpvt"`` (RyR2 gain-of-function, e.g. R4496C / R2474S mice: more, larger
and longer sparks, spontaneous waves; Fernández-Velasco et al. 2009 Circ Res; Uchinoumi et al.
2010 Circ Res) multiplies (our choice of sizes, in the reported directions, not fitted to
data): spark rate × 2.5, spark amplitude × 1.30, FWHM × 1.12, release
(rise) × 1.25, t50 × 1.35, puff rate × 1.5, wave rate × 6. The distributions overlap: a
logistic regression on (amplitude, rise, t50, FDHM, FWHM) separates single sparks ≈ 80 % of the
time (leave-one-cell-out, 12+12 cells), cells by majority vote ≈ 100 %.

Detector (:mod:`.optics`)
-------------------------
Exponential photobleaching (τ 40 s), Poisson shot noise on photons (15 photons/px at rest for
line-scans, 10 for movies), gain 8 counts/photon, Gaussian read noise 6 counts, offset (blank)
100 counts, uint16.

Ground truth (:mod:`.groundtruth`)
----------------------------------
An event's mask = pixels where its own noise-free ΔF/F0 ≥ 20 % of its peak (larger
contribution wins on overlap); characteristics measured on its own noise-free ΔF/F0 with the
DESIGN.md definitions. Files: :mod:`.io`; live streaming: :mod:`.stream`.
"""

from .groundtruth import EVENT_COLUMNS, MASK_FRACTION
from .io import read_ground_truth, write_dotti_folder, write_recording
from .linescan import simulate_linescan
from .movie import simulate_movie
from .params import (
    PHENOTYPES,
    CellParams,
    EventStats,
    LinescanParams,
    LogNormal,
    MovieParams,
    OpticsParams,
)
from .recording import Recording
from .stream import stream_recording

__all__ = [
    "EVENT_COLUMNS",
    "MASK_FRACTION",
    "PHENOTYPES",
    "CellParams",
    "EventStats",
    "LinescanParams",
    "LogNormal",
    "MovieParams",
    "OpticsParams",
    "Recording",
    "read_ground_truth",
    "simulate_linescan",
    "simulate_movie",
    "stream_recording",
    "write_dotti_folder",
    "write_recording",
]
