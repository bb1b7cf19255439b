"""Reaction-diffusion of Ca²⁺ released from a point source: the spark's 3-D radial field.

A Ca²⁺ release unit (a cluster of RyRs) is a point source of current ``flux_pA`` open for
``duration_ms`` in a spherically symmetric cytosol (Smith, Keizer, Stern, Lederer & Cheng
1998, Biophys. J. 75:15; Soeller & Cannell 1997, Biophys. J. 73:97 and 2002, Biophys. J.
82:2396; Izu, Wier & Balke 2001, Biophys. J. 80:88 on the width such releases can give).
Free Ca²⁺, the Ca-bound indicator and the Ca-bound mobile buffers diffuse (the free and bound
forms of a buffer share one diffusion coefficient, so its total stays uniform); troponin C is
stationary; the SERCA pump takes Ca²⁺ up. Space is a finite-volume radial grid (fine near the
source, coarser outside) with a no-flux outer wall; diffusion is backward Euler through a
precomputed inverse (unconditionally stable, conserves mass exactly), reactions are the
implicit step of :mod:`offline.devsim.kinetics`. The result is ΔF/F0(r, t) of the indicator.

1 pA of Ca²⁺ current = 1e-12 / (2·96485) mol/s ≈ 5.18 µM·µm³/ms.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

from offline.devsim.kinetics import Cytosol, react, uptake

log = logging.getLogger(__name__)

#: the first part of a long (ember) plateau is integrated with the fine time step
FAST_PHASE_MS = 20.0
UM3_UM_PER_MS_PER_PA = 1e-12 / (2 * 96485.332) * 1e-3 / 1e-21


@dataclass(frozen=True)
class Release:
    """Ca²⁺ release of one unit: a constant current for ``duration_ms``, then an exponential
    decline with ``decay_ms`` (the RyRs of the cluster close one by one; 0 = abrupt end)."""

    flux_pA: float
    duration_ms: float
    decay_ms: float = 0.0

    def current_pA(self, t_ms: float) -> float:
        """Release current at ``t_ms`` after the opening."""
        if t_ms < self.duration_ms:
            return self.flux_pA
        if self.decay_ms <= 0:
            return 0.0
        return self.flux_pA * math.exp(-(t_ms - self.duration_ms) / self.decay_ms)

    @property
    def active_ms(self) -> float:
        """How long the current stays above 1 % of its plateau."""
        return self.duration_ms + self.decay_ms * math.log(100.0)


@dataclass(frozen=True)
class RadialGrid:
    """Finite-volume shells: ``faces_um`` (n + 1), ``centers_um`` and ``volumes_um3`` (n)."""

    faces_um: np.ndarray
    centers_um: np.ndarray
    volumes_um3: np.ndarray

    @classmethod
    def build(cls, r_max_um: float = 8.0, inner_um: float = 1.0, inner_dr_um: float = 0.04,
              outer_dr_um: float = 0.1) -> RadialGrid:
        """Shells of ``inner_dr_um`` up to ``inner_um``, then ``outer_dr_um`` to ``r_max_um``."""
        inner = np.arange(0.0, inner_um, inner_dr_um)
        outer = np.arange(inner_um, r_max_um + 0.5 * outer_dr_um, outer_dr_um)
        faces = np.concatenate([inner, outer])
        volumes = 4.0 / 3.0 * np.pi * np.diff(faces**3)
        return cls(faces, 0.5 * (faces[1:] + faces[:-1]), volumes)

    def laplacian(self, diffusion_um2_per_ms: float) -> np.ndarray:
        """Matrix ``L`` with ``dc/dt = L c`` (no flux through r = 0 and r = r_max)."""
        n = len(self.centers_um)
        area = 4.0 * np.pi * self.faces_um[1:-1] ** 2
        conductance = diffusion_um2_per_ms * area / np.diff(self.centers_um)
        flux = np.zeros((n, n))
        idx = np.arange(n - 1)
        flux[idx, idx] -= conductance
        flux[idx + 1, idx + 1] -= conductance
        flux[idx, idx + 1] += conductance
        flux[idx + 1, idx] += conductance
        return flux / self.volumes_um3[:, None]

    def content(self, concentration_uM: np.ndarray) -> float:
        """Amount in the domain (µM·µm³)."""
        return float(self.volumes_um3 @ concentration_uM)


@functools.lru_cache(maxsize=64)
def _implicit_operator(grid_key: tuple[float, ...], diffusion_um2_per_ms: float,
                       dt_ms: float) -> np.ndarray:
    grid = RadialGrid.build(*grid_key)
    n = len(grid.centers_um)
    return np.linalg.inv(np.eye(n) - dt_ms * grid.laplacian(diffusion_um2_per_ms))


@dataclass
class RadialSolution:
    """ΔF/F0 of the indicator on the radial grid (``dff0[r, t]``) and bookkeeping series."""

    r_um: np.ndarray
    t_ms: np.ndarray
    dff0: np.ndarray
    calcium_content_uM_um3: np.ndarray
    indicator_bound_range_uM: tuple[float, float]


@dataclass(frozen=True)
class SolverSettings:
    """Grid and time stepping of :func:`solve_release`: ``dt_ms`` while the field changes fast
    (opening and closing of the release), ``tail_dt_ms`` otherwise."""

    grid: tuple[float, float, float, float] = (8.0, 1.0, 0.04, 0.1)
    dt_ms: float = 0.1
    tail_dt_ms: float = 0.25
    out_dt_ms: float = 0.5
    tail_ms: float = 150.0


def solve_release(release: Release, cytosol: Cytosol = Cytosol(),
                  settings: SolverSettings = SolverSettings()) -> RadialSolution:
    """Integrate the release and ``settings.tail_ms`` after it; sample every ``out_dt_ms``.

    Parameters
    ----------
    release
        Current and open time of the source (in the innermost shell).
    cytosol
        Buffers, indicator, pump and resting [Ca²⁺].
    settings
        Grid and time steps.
    """
    grid = RadialGrid.build(*settings.grid)
    buffers = cytosol.all_buffers
    ca = np.full(len(grid.centers_um), cytosol.rest_ca_uM)
    bound = np.repeat(np.asarray(cytosol.rest_bound_uM())[:, None], len(ca), axis=1)
    uM_per_pA_ms = UM3_UM_PER_MS_PER_PA / grid.volumes_um3[0]
    n_out = int(round((release.active_ms + settings.tail_ms) / settings.out_dt_ms))
    frames, content = [], []
    lo, hi = np.inf, -np.inf
    t = 0.0
    for _ in range(n_out + 1):
        frames.append(bound[0].copy())
        content.append(grid.content(ca + bound.sum(axis=0)))
        lo, hi = min(lo, bound[0].min()), max(hi, bound[0].max())
        dt = settings.dt_ms if _changing(release, t) else settings.tail_dt_ms
        ca_op, mobile = _operators(settings.grid, cytosol, dt)
        for _ in range(max(1, int(round(settings.out_dt_ms / dt)))):
            ca[0] += uM_per_pA_ms * dt * release.current_pA(t + 0.5 * dt)
            ca = ca_op @ ca
            for i, op in mobile:
                bound[i] = op @ bound[i]
            ca, bound = react(ca, bound, buffers, dt)
            ca = uptake(ca, cytosol, dt)
            t += dt
    dff0 = cytosol.dff0(np.stack(frames, axis=1)).astype(np.float32)
    t_ms = np.arange(len(frames)) * settings.out_dt_ms
    return RadialSolution(grid.centers_um, t_ms, dff0, np.asarray(content), (float(lo), float(hi)))


def _changing(release: Release, t_ms: float) -> bool:
    """True while the field changes fast: the first 20 ms and the closing of the release."""
    end = release.duration_ms
    return t_ms < min(end, FAST_PHASE_MS) or end <= t_ms < end + release.decay_ms


def _operators(grid_key: tuple[float, ...], cytosol: Cytosol, dt_ms: float):
    """Implicit diffusion operators of free Ca and of each mobile buffer (index, operator)."""
    ca_op = _implicit_operator(grid_key, cytosol.ca_diffusion_um2_per_ms, dt_ms)
    mobile = [(i, _implicit_operator(grid_key, b.diffusion_um2_per_ms, dt_ms))
              for i, b in enumerate(cytosol.all_buffers) if b.diffusion_um2_per_ms > 0]
    return ca_op, mobile


@functools.lru_cache(maxsize=256)
def spark_template(release: Release, cytosol: Cytosol = Cytosol(),
                   settings: SolverSettings = SolverSettings()) -> RadialSolution:
    """:func:`solve_release`, cached per (release, cytosol, settings) for the process."""
    solution = solve_release(release, cytosol, settings)
    log.debug("solved %s: peak ΔF/F0 %.2f at the source", release, solution.dff0[0].max())
    return solution
