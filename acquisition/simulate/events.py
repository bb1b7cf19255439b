"""Sampling Ca²⁺ events and rendering each one's noise-free ΔF/F0 in its bounding box.

Shapes (all phenomenological, after Cheng et al. 1993, Cheng & Lederer 2008 and the
synthetic sparks of SparkMaster 2):

* **Temporal profile** (relative to the start of release, ``t`` ≥ 0): during a release of
  duration ``T`` the dye signal rises as ``(1 − e^(−t/τ_on)) / (1 − e^(−T/τ_on))`` (constant
  release flux filling a buffered compartment), then decays exponentially with
  ``τ_d = t50 / ln 2``. The peak is at ``T``; the 10 %→peak rise time is ≈ 0.93 ``T`` for
  sparks (``τ_on = T``) and the decay to 50 % takes ``t50``.
* **Spatial profile**: a Gaussian whose variance grows linearly with time (diffusion),
  ``σ²(t) = σ_p² (1 + g (t − T) / (T + τ_d))`` with ``σ_p = FWHM / 2.355`` at the peak and
  growth ``g`` (≥ 0.5 σ_p² before the peak). Full-frame sparks are slightly elongated across
  the striations (σ_y/σ_x ∈ [1, 1.2]).
* **Focus**: release sites lie at a random distance ``d`` ∈ U(0, ``focal_offset_max_um``) from
  the focal plane / scan line; the observed amplitude is the intrinsic one times
  ``exp(−d² / 2σ_ax²)`` (a Gaussian blob sampled off its centre keeps its lateral width).
* **Waves**: a front leaves an origin at speed ``v`` and reaches a point at distance ``r`` at
  ``t0 + r / v``; each point then follows the temporal profile (release ``rise_ms``,
  ``τ_on = rise/2``, decay ``t50``) with amplitude falling by up to 15 % across the cell.

Events are rendered only inside the cell and only in their bounding box (±3.5 σ, from the start
of release to 6 τ_d after the peak; 5 τ_d for waves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cell import CellModel
from .params import EventStats, LogNormal

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Grid:
    """Sampling grid of a recording: ``n_time`` lines/frames of ``spatial_shape`` pixels."""

    n_time: int
    dt_ms: float
    pixel_um: float
    spatial_shape: tuple[int, ...]

    @property
    def duration_ms(self) -> float:
        """Duration of the recording (ms)."""
        return self.n_time * self.dt_ms


@dataclass(frozen=True)
class SimEvent:
    """Parameters of one simulated event (intrinsic, before sampling on the grid)."""

    kind: str
    t_release_ms: float
    x_um: float
    y_um: float
    amplitude_dff0: float
    release_ms: float
    tau_on_ms: float
    tau_decay_ms: float
    fwhm_um: float = 0.0
    aspect_y: float = 1.0
    width_growth: float = 0.0
    speed_um_s: float = 0.0

    @property
    def t_peak_ms(self) -> float:
        """Time of the peak (at the origin for waves)."""
        return self.t_release_ms + self.release_ms


def draw(dist: LogNormal, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Samples of a clipped log-normal distribution."""
    values = dist.median * np.exp(dist.log_sd * rng.standard_normal(size))
    return np.clip(values, dist.low, dist.high)


def temporal_profile(t_ms: np.ndarray, release_ms: float, tau_on_ms: float,
                     tau_decay_ms: float) -> np.ndarray:
    """Normalized (peak 1 at ``release_ms``) signal ``t_ms`` after the start of release."""
    t = np.asarray(t_ms, dtype=np.float32)
    rising = -np.expm1(-np.clip(t, 0, release_ms) / tau_on_ms) / -math.expm1(-release_ms / tau_on_ms)
    decaying = np.exp(-np.clip(t - release_ms, 0, None) / tau_decay_ms)
    return np.where(t < 0, 0.0, np.where(t <= release_ms, rising, decaying)).astype(np.float32)


def site_positions(cell: CellModel) -> np.ndarray:
    """Candidate release sites: ``(n, ndim)`` pixel indices on z-lines where sites are allowed."""
    cols = np.unique(np.round(cell.z_lines_um / cell.pixel_um).astype(int))
    cols = cols[(cols >= 0) & (cols < cell.sites.shape[-1])]
    if cell.sites.ndim == 1:
        return cols[cell.sites[cols]][:, None]
    rows, idx = np.nonzero(cell.sites[:, cols])
    return np.stack([rows, cols[idx]], axis=1)


def _place(cell: CellModel, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x and y (µm; NaN for line-scans) of ``n`` sites, jittered 0.1 µm around z-line pixels."""
    sites = site_positions(cell)
    if sites.size == 0:
        return np.zeros(0), np.zeros(0)
    chosen = sites[rng.integers(0, len(sites), n)] * cell.pixel_um
    x_um = chosen[:, -1] + rng.normal(0, 0.1, n)
    y_um = chosen[:, 0] + rng.normal(0, 0.1, n) if cell.sites.ndim == 2 else np.full(n, np.nan)
    return x_um, y_um


def _focal_attenuation(stats: EventStats, n: int, rng: np.random.Generator) -> np.ndarray:
    offset_um = rng.uniform(0, stats.focal_offset_max_um, n)
    return np.exp(-(offset_um**2) / (2 * stats.axial_sigma_um**2))


def _local_events(kind: str, n: int, stats: EventStats, cell: CellModel, grid: Grid,
                  rng: np.random.Generator) -> list[SimEvent]:
    """Sparks or puffs: ``n`` events at z-line sites, peak times uniform over the recording."""
    pre = f"{kind}_"
    x_um, y_um = _place(cell, n, rng)
    n = len(x_um)
    amplitude = draw(getattr(stats, pre + "amplitude_dff0"), rng, n)
    amplitude = amplitude * _focal_attenuation(stats, n, rng)
    fwhm = draw(getattr(stats, pre + "fwhm_um"), rng, n)
    release = draw(getattr(stats, pre + "release_ms"), rng, n)
    tau_decay = draw(getattr(stats, pre + "t50_ms"), rng, n) / math.log(2)
    t_peak = rng.uniform(0, grid.duration_ms, n)
    aspect = rng.uniform(1.0, 1.2, n)
    on_factor = 1.0 if kind == "spark" else 1.0 / 3.0
    growth = stats.spark_width_growth if kind == "spark" else 0.1
    return [
        SimEvent(kind, t_peak[i] - release[i], x_um[i], y_um[i], amplitude[i], release[i],
                 release[i] * on_factor, tau_decay[i], fwhm[i], aspect[i], growth)
        for i in range(n)
    ]


def _waves(stats: EventStats, cell: CellModel, grid: Grid, rng: np.random.Generator) -> list[SimEvent]:
    n = rng.poisson(stats.wave_rate_per_cell_s * grid.duration_ms / 1e3)
    x_um, y_um = _place(cell, n, rng)
    n = len(x_um)
    amplitude = draw(stats.wave_amplitude_dff0, rng, n)
    speed = draw(stats.wave_speed_um_s, rng, n)
    rise = draw(stats.wave_rise_ms, rng, n)
    tau_decay = draw(stats.wave_t50_ms, rng, n) / math.log(2)
    t_start = rng.uniform(0, grid.duration_ms, n)
    return [
        SimEvent("wave", t_start[i], x_um[i], y_um[i], amplitude[i], rise[i], rise[i] / 2,
                 tau_decay[i], speed_um_s=speed[i])
        for i in range(n)
    ]


def sample_events(stats: EventStats, cell: CellModel, grid: Grid, rng: np.random.Generator,
                  band_um: float | None = None) -> list[SimEvent]:
    """All events of one recording, sorted by peak time.

    Spark/puff counts are Poisson with mean ``rate × cell length / 100 µm × duration`` for
    line-scans, and ``rate / band_um × cell area / 100 µm² × duration`` for movies.
    """
    duration_s = grid.duration_ms / 1e3
    size_100 = cell.area_um2 / 100.0 / (band_um if band_um else 1.0)
    n_sparks = rng.poisson(stats.spark_rate_per_100um_s * size_100 * duration_s)
    n_puffs = rng.poisson(stats.puff_rate_per_100um_s * size_100 * duration_s)
    events = _local_events("spark", n_sparks, stats, cell, grid, rng)
    events += _local_events("puff", n_puffs, stats, cell, grid, rng)
    events += _waves(stats, cell, grid, rng)
    return sorted(events, key=lambda ev: ev.t_peak_ms)


def _time_window(ev: SimEvent, grid: Grid, n_tau: float) -> slice:
    first = max(int(math.floor(ev.t_release_ms / grid.dt_ms)), 0)
    last = int(math.ceil((ev.t_peak_ms + n_tau * ev.tau_decay_ms) / grid.dt_ms)) + 1
    return slice(first, min(last, grid.n_time))


def _axis_window(centre_um: float, half_um: float, grid: Grid, size: int) -> slice:
    first = max(int(math.floor((centre_um - half_um) / grid.pixel_um)), 0)
    last = int(math.ceil((centre_um + half_um) / grid.pixel_um)) + 1
    return slice(first, min(last, size))


def _gaussian(sl: slice, centre_um: float, sigma_um: np.ndarray, pixel_um: float) -> np.ndarray:
    """``(T, n)`` Gaussian along one axis for each time's ``sigma_um``."""
    pos_um = np.arange(sl.start, sl.stop, dtype=np.float32) * pixel_um - centre_um
    return np.exp(-(pos_um[None, :] ** 2) / (2 * sigma_um[:, None] ** 2))


def _render_local(ev: SimEvent, grid: Grid, inside: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """Spark or puff: separable Gaussian × temporal profile in its bounding box."""
    t_sl = _time_window(ev, grid, 6.0)
    t_ms = np.arange(t_sl.start, t_sl.stop, dtype=np.float32) * grid.dt_ms - ev.t_release_ms
    sigma_p = ev.fwhm_um / FWHM_PER_SIGMA
    rel = ev.width_growth * (t_ms - ev.release_ms) / (ev.release_ms + ev.tau_decay_ms)
    sigma = sigma_p * np.sqrt(np.maximum(1.0 + rel, 0.5))
    time = ev.amplitude_dff0 * temporal_profile(t_ms, ev.release_ms, ev.tau_on_ms, ev.tau_decay_ms)
    half_um = 3.5 * float(sigma.max()) * ev.aspect_y
    x_sl = _axis_window(ev.x_um, half_um, grid, grid.spatial_shape[-1])
    block = time[:, None] * _gaussian(x_sl, ev.x_um, sigma, grid.pixel_um)
    if len(grid.spatial_shape) == 1:
        return (t_sl, x_sl), (block * inside[x_sl]).astype(np.float32)
    y_sl = _axis_window(ev.y_um, half_um, grid, grid.spatial_shape[0])
    along_y = _gaussian(y_sl, ev.y_um, sigma * ev.aspect_y, grid.pixel_um)
    block = block[:, None, :] * along_y[:, :, None] * inside[y_sl, x_sl]
    return (t_sl, y_sl, x_sl), block.astype(np.float32)


def _render_wave(ev: SimEvent, grid: Grid, inside: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """Wave: every pixel of the cell follows the temporal profile from its arrival time."""
    pos = np.indices(grid.spatial_shape, dtype=np.float32) * grid.pixel_um
    dist_um = np.abs(pos[-1] - ev.x_um)
    if len(grid.spatial_shape) == 2:
        dist_um = np.hypot(dist_um, pos[0] - ev.y_um)
    reach_um = float(dist_um[inside].max()) if inside.any() else 0.0
    amplitude = ev.amplitude_dff0 * (1.0 - 0.15 * dist_um / max(reach_um, 1e-6)) * inside
    delay_ms = dist_um / ev.speed_um_s * 1e3
    travel = SimEvent("wave", ev.t_release_ms, 0, 0, 0, ev.release_ms, ev.tau_on_ms,
                      ev.tau_decay_ms)
    t_sl = _time_window(travel, grid, 5.0)
    t_sl = slice(t_sl.start, min(t_sl.stop + int(reach_um / ev.speed_um_s * 1e3 / grid.dt_ms) + 1,
                                 grid.n_time))
    t_ms = np.arange(t_sl.start, t_sl.stop, dtype=np.float32) * grid.dt_ms - ev.t_release_ms
    local_t = t_ms.reshape((-1,) + (1,) * dist_um.ndim) - delay_ms[None]
    block = amplitude[None] * temporal_profile(local_t, ev.release_ms, ev.tau_on_ms, ev.tau_decay_ms)
    spatial = tuple(slice(0, n) for n in grid.spatial_shape)
    return (t_sl, *spatial), block.astype(np.float32)


def render_event(ev: SimEvent, grid: Grid, inside: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """Noise-free ΔF/F0 of one event: ``(slices into the recording, block)``."""
    if ev.kind == "wave":
        return _render_wave(ev, grid, inside)
    return _render_local(ev, grid, inside)
