"""Confocal detection of a radially symmetric 3-D ΔF/F0 field.

The microscope sees the field convolved with a 3-D Gaussian point-spread function (lateral
FWHM ``fwhm_xy_um``, axial ``fwhm_z_um``; Smith et al. 1998 and Izu et al. 2001 blur their
model sparks the same way). For a source at axial distance ``z`` from the focal plane (or
from the scan line), the blurred field is symmetric about the optical axis through the source,
so it is a function of the lateral distance ``ρ`` only:

    g(ρ; z) = ∫∫ G_xy(ρ, ρ') · [∫ f(√(ρ'² + z'²)) G_z(z' − z) dz'] ρ' dρ'

with the lateral (Hankel-type) kernel ``G_xy(ρ, ρ') = exp(−(ρ − ρ')²/2σ²) · I0e(ρρ'/σ²) / σ²``.
Both integrals are linear in ``f``, so :class:`FocalBlur` builds one matrix per focal distance
(cached) and applies it to every time sample at once. A spark off the scan line by ``y`` in the
focal plane is read at ``ρ = √(x² + y²)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import i0e

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: focal distances are rounded to this step (the blur changes by < 3 % per step)
Z_STEP_UM = 0.05


@dataclass(frozen=True)
class ConfocalPSF:
    """Gaussian point-spread function (FWHM, µm)."""

    fwhm_xy_um: float = 0.4
    fwhm_z_um: float = 1.5

    @property
    def sigma_xy_um(self) -> float:
        return self.fwhm_xy_um / FWHM_PER_SIGMA

    @property
    def sigma_z_um(self) -> float:
        return self.fwhm_z_um / FWHM_PER_SIGMA


@dataclass
class ObservedField:
    """A blurred event seen in one focal plane: ``dff0[ρ, t]`` on uniform grids from 0."""

    rho_step_um: float
    t_step_ms: float
    dff0: np.ndarray

    @property
    def rho_max_um(self) -> float:
        return (self.dff0.shape[0] - 1) * self.rho_step_um

    @property
    def duration_ms(self) -> float:
        return (self.dff0.shape[1] - 1) * self.t_step_ms

    def sample(self, rho_um: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Bilinear interpolation at (``rho_um``, ``t_ms``) (broadcast); 0 outside the grids."""
        fr = np.asarray(rho_um, dtype=np.float32) / self.rho_step_um
        ft = np.asarray(t_ms, dtype=np.float32) / self.t_step_ms
        fr, ft = np.broadcast_arrays(fr, ft)
        n_rho, n_t = self.dff0.shape
        inside = (fr >= 0) & (fr <= n_rho - 1) & (ft >= 0) & (ft <= n_t - 1)
        fr = np.clip(fr, 0, n_rho - 1.001)
        ft = np.clip(ft, 0, n_t - 1.001)
        ir, it = fr.astype(np.intp), ft.astype(np.intp)
        wr, wt = fr - ir, ft - it
        v = self.dff0
        out = ((1 - wr) * ((1 - wt) * v[ir, it] + wt * v[ir, it + 1])
               + wr * ((1 - wt) * v[ir + 1, it] + wt * v[ir + 1, it + 1]))
        return np.where(inside, out, 0.0).astype(np.float32)


@dataclass
class FocalBlur:
    """Blurring matrices from a radial grid (``r_um``) to ``ρ`` in a plane at distance ``z``.

    Parameters
    ----------
    psf
        The point-spread function.
    r_um
        Radii of the 3-D field's samples (increasing).
    rho_max_um, step_um
        Output grid ``ρ = 0, step, …, rho_max``; the integration grids use the same step.
    """

    psf: ConfocalPSF
    r_um: np.ndarray
    rho_max_um: float = 6.0
    step_um: float = 0.025
    _cache: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = int(round(self.rho_max_um / self.step_um))
        self.rho_um = np.arange(n + 1) * self.step_um
        self._rho_src = (np.arange(n) + 0.5) * self.step_um  # ring mid-points
        self._lateral = self._lateral_matrix()

    def _lateral_matrix(self) -> np.ndarray:
        s2 = self.psf.sigma_xy_um**2
        rho, src = self.rho_um[:, None], self._rho_src[None, :]
        kernel = np.exp(-((rho - src) ** 2) / (2 * s2)) * i0e(rho * src / s2) * src / s2
        return kernel / kernel.sum(axis=1, keepdims=True)

    def _axial_matrix(self, z_um: float) -> np.ndarray:
        """``A[ρ', r]``: the field averaged along z through the axial PSF at ``ρ'``."""
        r_max = float(self.r_um[-1])
        z = np.arange(-r_max, r_max + self.step_um, self.step_um)
        weights = np.exp(-((z - z_um) ** 2) / (2 * self.psf.sigma_z_um**2))
        weights /= weights.sum()
        radius = np.hypot(self._rho_src[:, None], z[None, :])
        pos = np.interp(radius, self.r_um, np.arange(len(self.r_um)), right=np.inf)
        keep = np.isfinite(pos)
        lo = np.floor(pos[keep]).astype(np.intp)
        frac = pos[keep] - lo
        hi = np.minimum(lo + 1, len(self.r_um) - 1)
        rows = np.broadcast_to(np.arange(len(self._rho_src))[:, None], radius.shape)[keep]
        w = np.broadcast_to(weights[None, :], radius.shape)[keep]
        shape = (len(self._rho_src), len(self.r_um))
        size = shape[0] * shape[1]
        flat = np.bincount(rows * shape[1] + lo, w * (1 - frac), minlength=size)
        flat += np.bincount(rows * shape[1] + hi, w * frac, minlength=size)
        return flat.reshape(shape)

    def matrix(self, z_um: float) -> np.ndarray:
        """``K[ρ, r]`` for a source at ``|z_um|`` from the focal plane (cached per
        ``Z_STEP_UM``)."""
        key = round(round(abs(float(z_um)) / Z_STEP_UM) * Z_STEP_UM, 4)
        if key not in self._cache:
            self._cache[key] = (self._lateral @ self._axial_matrix(key)).astype(np.float32)
        return self._cache[key]

    def observe(self, dff0_r_t: np.ndarray, t_step_ms: float, z_um: float) -> ObservedField:
        """The field ``dff0_r_t[r, t]`` seen in a plane ``z_um`` away from its centre."""
        return ObservedField(self.step_um, t_step_ms, self.matrix(z_um) @ dff0_r_t)
