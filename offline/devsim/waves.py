"""Ca²⁺ waves: a release front travelling through the cell; the local time course is physics.

Behind the front every CRU releases, so locally the cytosol behaves like one well-mixed
compartment (no net diffusion): a uniform release of ``release_ms`` into the same buffers,
indicator and SERCA pump as the sparks (:mod:`offline.devsim.kinetics`). Its rise comes from
the release time and the dye's binding, its slow decay (t50 of a few hundred ms) from SR
uptake, which is what really ends a wave. The release amount is chosen so that the local peak
ΔF/F0 matches a drawn amplitude (1–3). The front arrives at ``t0 + distance / speed``
(50–150 µm/s); the local amplitude wanders by ~10 % along the cell and is lower in the nucleus;
a wave either crosses the whole cell or dies out after some tens of µm.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from offline.devsim.kinetics import Cytosol, react, uptake
from offline.devsim.optics import ObservedField

#: candidate release rates (µM/ms) solved at once; the one nearest the target amplitude wins
CANDIDATE_FLUX_UM_PER_MS = tuple(np.geomspace(0.02, 40.0, 72).tolist())
CLOSING_MS = 6.0
NUCLEUS_FACTOR = 0.7
DIE_OUT_UM = 5.0


@dataclass(frozen=True)
class WavePlan:
    """One wave: origin (µm), start (ms), speed, local amplitude and release time."""

    x_um: float
    y_um: float
    t0_ms: float
    speed_um_per_ms: float
    amplitude_dff0: float
    release_ms: float
    pump_scale: float
    extent_um: float = math.inf


@functools.lru_cache(maxsize=64)
def _compartment_curves(cytosol: Cytosol, release_ms: float, total_ms: float,
                        dt_ms: float) -> np.ndarray:
    """Indicator ΔF/F0 ``[candidate, t]`` of a well-mixed compartment for every release rate."""
    flux = np.asarray(CANDIDATE_FLUX_UM_PER_MS)
    ca = np.full(flux.shape, cytosol.rest_ca_uM)
    bound = np.repeat(np.asarray(cytosol.rest_bound_uM())[:, None], len(flux), axis=1)
    n_steps = int(round(total_ms / dt_ms))
    dye = np.empty((len(flux), n_steps + 1))
    for step in range(n_steps + 1):
        dye[:, step] = bound[0]
        t = (step + 0.5) * dt_ms
        shape = 1.0 if t < release_ms else math.exp(-(t - release_ms) / CLOSING_MS)
        ca = ca + flux * shape * dt_ms
        ca, bound = react(ca, bound, cytosol.all_buffers, dt_ms)
        ca = uptake(ca, cytosol, dt_ms)
    return cytosol.dff0(dye)


def wave_time_course(cytosol: Cytosol, plan: WavePlan, dff0_scale: float,
                     total_ms: float = 1500.0, dt_ms: float = 0.5) -> ObservedField:
    """Local ΔF/F0 after the front passes (``dff0[0, t]``, from the front's arrival)."""
    pump = dataclasses.replace(cytosol.pump,
                               vmax_uM_per_ms=cytosol.pump.vmax_uM_per_ms * plan.pump_scale)
    cytosol = dataclasses.replace(cytosol, pump=pump)
    curves = _compartment_curves(cytosol, round(plan.release_ms), total_ms, dt_ms) * dff0_scale
    best = int(np.argmin(np.abs(curves.max(axis=1) - plan.amplitude_dff0)))
    curve = curves[best].astype(np.float32)
    taper = np.clip((len(curve) - 1 - np.arange(len(curve))) / (0.2 * len(curve)), 0, 1)
    # two identical rows: the field is uniform in ρ (the front geometry is painted separately)
    return ObservedField(1.0, dt_ms, np.repeat((curve * taper)[None, :], 2, axis=0))


def paint_wave(plan: WavePlan, course: ObservedField, times_ms: np.ndarray,
               coords_um: tuple[np.ndarray, np.ndarray], inside: np.ndarray,
               nucleus: np.ndarray, wander: np.ndarray) -> np.ndarray:
    """The wave's ΔF/F0 on the recording grid.

    Parameters
    ----------
    plan, course
        The wave and its local time course.
    times_ms
        Sampling time of every line/row, broadcastable against the spatial maps with time
        first (``(T, 1)`` for line-scans, ``(T, Y, 1)`` for movies).
    coords_um
        (y, x) of every pixel (``y`` is 0 on a line-scan).
    inside, nucleus, wander
        Cell and nucleus masks and the relative local amplitude (≈ 1 ± 0.1).
    """
    distance = np.hypot(coords_um[0] - plan.y_um, coords_um[1] - plan.x_um)
    arrival = plan.t0_ms + distance / plan.speed_um_per_ms
    reach = np.clip((plan.extent_um - distance) / DIE_OUT_UM, 0.0, 1.0)
    local = inside * wander * reach * np.where(nucleus, NUCLEUS_FACTOR, 1.0)
    return course.sample(np.zeros(1, np.float32), times_ms - arrival[None]) * local[None]
