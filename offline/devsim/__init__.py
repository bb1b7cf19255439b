"""An independent development-set generator: Ca²⁺ sparks from reaction-diffusion physics.

castream's models are trained on ``acquisition.simulate`` (analytic shapes). This package,
written separately and importing nothing from it, makes the recordings they are *validated*
on, with realism that comes from physics rather than from fitted shapes:

* sparks: Ca²⁺ released from a point source (current, plateau, closing time) diffusing with a
  fluorescent dye, stationary and mobile buffers and SERCA uptake in a spherically symmetric
  cytosol (:mod:`~offline.devsim.diffusion`, :mod:`~offline.devsim.kinetics`; Smith et al.
  1998, Soeller & Cannell 1997/2002, Izu et al. 2001), seen through a 3-D Gaussian confocal
  PSF at a random distance from the scan line or focal plane (:mod:`~offline.devsim.optics`),
  so in-focus, mid and out-of-focus sparks, embers, macro-sparks, pairs and repeats come out of
  the model (:mod:`~offline.devsim.schedule`, :mod:`~offline.devsim.render`);
* waves: a travelling release front whose local time course is a well-mixed compartment with
  the same buffers and pump (:mod:`~offline.devsim.waves`); puffs: clusters of releases;
* heterogeneous cells and an imperfect detector (:mod:`~offline.devsim.cell`,
  :mod:`~offline.devsim.detector`), with calibration ranges wider than training
  (:mod:`~offline.devsim.params`, :mod:`~offline.devsim.calibration`);
* ground truth from each event's own noise-free ΔF/F0 (:mod:`~offline.devsim.truth`,
  :mod:`~offline.devsim.measure`); every event has a ``subtype``;
* a stress option, off by default: single sparks that carry the noise of the recording a
  recorded shape was cut from (``template_noise_sd``, :mod:`~offline.devsim.template_noise`).

Entry points: :func:`dev_linescan`, :func:`dev_movie`, :class:`DevSource`;
``castream evaluate MODEL dev:linescan:12``; ``python -m offline.devsim.preview``.
"""

from offline.devsim.generate import DevRecording, DevSource, dev_linescan, dev_movie, generate
from offline.devsim.params import DevParams, LinescanDevParams, MovieDevParams

__all__ = ["DevParams", "DevRecording", "DevSource", "LinescanDevParams", "MovieDevParams",
           "dev_linescan", "dev_movie", "generate"]
