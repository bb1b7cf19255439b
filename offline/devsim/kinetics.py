"""Cytosolic Ca²⁺ buffering, the fluorescent indicator and SR uptake (no space).

The reaction scheme is the one of the spark models of Smith, Keizer, Stern, Lederer & Cheng
(1998, Biophys. J. 75:15, "A simple numerical model of calcium spark formation and detection
in cardiac myocytes") and Soeller & Cannell (1997, Biophys. J. 73:97; 2002, Biophys. J.
82:2396): free Ca²⁺ binds each buffer ``B`` with ``Ca + B ⇌ CaB`` (``kon``, ``koff``); one
of the buffers is the indicator dye, whose fluorescence is ``Fmin·[B] + Fmax·[CaB]``; a
Hill-type SERCA pump takes Ca²⁺ back into the SR and a constant leak balances it at rest.

Units everywhere: µM, ms, µm, µM⁻¹·ms⁻¹, ms⁻¹, µm²/ms.

The reaction step is backward Euler for all buffers at once, solved for the new free [Ca²⁺]
by Newton's method (total Ca is conserved exactly by the step; positivity holds for any time
step), so the stiff fast buffers (ATP) need no tiny time steps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

#: Newton iterations of the implicit reaction step (converges monotonically from below)
NEWTON_ITERATIONS = 12
NEWTON_TOLERANCE_UM = 1e-7


@dataclass(frozen=True)
class Buffer:
    """A Ca²⁺ buffer: total concentration, binding rates and diffusion coefficient."""

    name: str
    total_uM: float
    kon_per_uM_ms: float
    koff_per_ms: float
    diffusion_um2_per_ms: float = 0.0

    @property
    def kd_uM(self) -> float:
        return self.koff_per_ms / self.kon_per_uM_ms

    def bound_at_equilibrium_uM(self, ca_uM: float | np.ndarray) -> float | np.ndarray:
        """[CaB] in equilibrium with free ``ca_uM``."""
        return self.total_uM * ca_uM / (ca_uM + self.kd_uM)


@dataclass(frozen=True)
class Indicator:
    """A fluorescent Ca²⁺ indicator: its buffer and its bright/dim fluorescence ratio."""

    buffer: Buffer
    fmax_over_fmin: float

    def dff0(self, bound_uM: np.ndarray, bound_rest_uM: float) -> np.ndarray:
        """ΔF/F0 from the Ca-bound dye concentration (``F ∝ [B]_T + (R − 1)·[CaB]``)."""
        gain = self.fmax_over_fmin - 1.0
        return gain * (bound_uM - bound_rest_uM) / (self.buffer.total_uM + gain * bound_rest_uM)


@dataclass(frozen=True)
class Pump:
    """SERCA uptake ``vmax·Ca^n / (K^n + Ca^n)`` (µM/ms), balanced at rest by a leak."""

    vmax_uM_per_ms: float = 0.2
    km_uM: float = 0.25
    hill: float = 2.0

    def rate_uM_per_ms(self, ca_uM: np.ndarray | float) -> np.ndarray | float:
        ca_n = np.power(np.maximum(ca_uM, 0.0), self.hill)
        return self.vmax_uM_per_ms * ca_n / (self.km_uM**self.hill + ca_n)


# Typical values of the cited models (Smith et al. 1998, Table 1; Soeller & Cannell 1997).
FLUO3 = Indicator(Buffer("fluo-3", 50.0, 0.08, 0.09, 0.02), fmax_over_fmin=40.0)
FLUO4 = Indicator(Buffer("fluo-4", 50.0, 0.1, 0.11, 0.06), fmax_over_fmin=100.0)
TROPONIN_C = Buffer("troponin C", 70.0, 0.039, 0.02, 0.0)
CALMODULIN = Buffer("calmodulin", 24.0, 0.1, 0.038, 0.025)
ATP = Buffer("ATP", 260.0, 0.225, 45.0, 0.14)
INDICATORS = {"fluo3": FLUO3, "fluo4": FLUO4}


@dataclass(frozen=True)
class Cytosol:
    """Everything the Ca²⁺ of the cytosol reacts with (hashable: templates are cached on it)."""

    indicator: Indicator = FLUO3
    buffers: tuple[Buffer, ...] = (TROPONIN_C, CALMODULIN, ATP)
    pump: Pump = field(default_factory=Pump)
    rest_ca_uM: float = 0.1
    ca_diffusion_um2_per_ms: float = 0.3

    @property
    def all_buffers(self) -> tuple[Buffer, ...]:
        """The indicator first, then the endogenous buffers."""
        return (self.indicator.buffer, *self.buffers)

    def rest_bound_uM(self) -> list[float]:
        """[CaB] of every buffer (indicator first) at rest."""
        return [float(b.bound_at_equilibrium_uM(self.rest_ca_uM)) for b in self.all_buffers]

    def dff0(self, indicator_bound_uM: np.ndarray) -> np.ndarray:
        """ΔF/F0 of Ca-bound indicator concentrations."""
        return self.indicator.dff0(indicator_bound_uM, self.rest_bound_uM()[0])


def react(ca_uM: np.ndarray, bound_uM: np.ndarray, buffers: tuple[Buffer, ...],
          dt_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """One backward-Euler step of all binding reactions.

    Parameters
    ----------
    ca_uM
        Free [Ca²⁺] per compartment, shape ``(n,)``.
    bound_uM
        [CaB] per buffer and compartment, shape ``(len(buffers), n)``.
    buffers
        The buffers.
    dt_ms
        Time step.

    Returns
    -------
    The new free [Ca²⁺] and bound concentrations; ``ca + Σ bound`` is unchanged.
    """
    total_b, kon, koff = _rate_columns(buffers)
    a, c = dt_ms * kon, dt_ms * koff
    total = ca_uM + bound_uM.sum(axis=0)
    x = ca_uM.astype(float, copy=True)
    for _ in range(NEWTON_ITERATIONS):
        den = 1.0 + c + a * x
        residual = x + ((bound_uM + a * x * total_b) / den).sum(axis=0) - total
        slope = 1.0 + (a * (total_b * (1.0 + c) - bound_uM) / den**2).sum(axis=0)
        x = np.clip(x - residual / slope, 0.0, total)
        if np.abs(residual).max() < NEWTON_TOLERANCE_UM:
            break
    new_bound = (bound_uM + a * x * total_b) / (1.0 + c + a * x)
    # the Newton residual goes into free Ca so that the step conserves total Ca exactly
    return np.maximum(total - new_bound.sum(axis=0), 0.0), new_bound


@functools.lru_cache(maxsize=32)
def _rate_columns(buffers: tuple[Buffer, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total, kon and koff of the buffers as ``(n_buffers, 1)`` columns."""
    def column(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=float)[:, None]

    return (column([b.total_uM for b in buffers]), column([b.kon_per_uM_ms for b in buffers]),
            column([b.koff_per_ms for b in buffers]))


def uptake(ca_uM: np.ndarray, cytosol: Cytosol, dt_ms: float) -> np.ndarray:
    """Free [Ca²⁺] after ``dt_ms`` of SERCA uptake minus the SR leak that balances it at rest."""
    pump = cytosol.pump
    leak = pump.rate_uM_per_ms(cytosol.rest_ca_uM)
    return np.maximum(ca_uM - dt_ms * (pump.rate_uM_per_ms(ca_uM) - leak), 0.0)
