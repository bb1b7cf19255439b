"""Parameters of the simulated microscope: acquisition settings and event statistics.

Every quantity carries its unit in its name. The event statistics are log-normal
distributions given by their median and the standard deviation of the log (``*_log_sd``);
the phenotype presets (:data:`PHENOTYPES`) are documented in the package docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Phenotype = Literal["wt", "cpvt"]


@dataclass(frozen=True)
class LogNormal:
    """Log-normal distribution given by its median and the SD of its natural log.

    ``low``/``high`` clip the samples to a physically sensible range.
    """

    median: float
    log_sd: float
    low: float = 0.0
    high: float = float("inf")

    def scaled(self, factor: float) -> LogNormal:
        """Same spread, median (and clip range) multiplied by ``factor``."""
        return replace(self, median=self.median * factor, low=self.low * factor,
                       high=self.high * factor)


@dataclass(frozen=True)
class EventStats:
    """Rates and shape distributions of sparks, puffs (embers) and waves of one phenotype.

    Spark shapes are *intrinsic* (at the release site, in focus): the observed amplitude is
    further attenuated by the site's distance from the focal plane / scan line
    (``focal_offset_max_um``, see :mod:`acquisition.simulate.events`).
    """

    spark_rate_per_100um_s: float = 4.0
    spark_amplitude_dff0: LogNormal = LogNormal(0.60, 0.45, 0.12, 3.0)
    spark_fwhm_um: LogNormal = LogNormal(1.90, 0.13, 1.2, 3.5)
    spark_release_ms: LogNormal = LogNormal(9.0, 0.28, 4.0, 25.0)
    spark_t50_ms: LogNormal = LogNormal(23.0, 0.22, 12.0, 70.0)
    spark_width_growth: float = 0.25
    puff_rate_per_100um_s: float = 0.3
    puff_amplitude_dff0: LogNormal = LogNormal(0.32, 0.25, 0.18, 0.6)
    puff_fwhm_um: LogNormal = LogNormal(4.2, 0.2, 3.0, 6.5)
    puff_release_ms: LogNormal = LogNormal(80.0, 0.35, 35.0, 180.0)
    puff_t50_ms: LogNormal = LogNormal(45.0, 0.3, 25.0, 110.0)
    wave_rate_per_cell_s: float = 0.02
    wave_amplitude_dff0: LogNormal = LogNormal(1.4, 0.2, 0.9, 2.2)
    wave_speed_um_s: LogNormal = LogNormal(95.0, 0.25, 50.0, 150.0)
    wave_rise_ms: LogNormal = LogNormal(25.0, 0.25, 12.0, 50.0)
    wave_t50_ms: LogNormal = LogNormal(180.0, 0.25, 100.0, 350.0)
    focal_offset_max_um: float = 0.8
    axial_sigma_um: float = 0.9


def _cpvt(wt: EventStats) -> EventStats:
    """CPVT (RyR2 gain-of-function) preset derived from WT; the shifts are documented."""
    return replace(
        wt,
        spark_rate_per_100um_s=wt.spark_rate_per_100um_s * 2.5,
        spark_amplitude_dff0=wt.spark_amplitude_dff0.scaled(1.30),
        spark_fwhm_um=wt.spark_fwhm_um.scaled(1.12),
        spark_release_ms=wt.spark_release_ms.scaled(1.25),
        spark_t50_ms=wt.spark_t50_ms.scaled(1.35),
        puff_rate_per_100um_s=wt.puff_rate_per_100um_s * 1.5,
        wave_rate_per_cell_s=wt.wave_rate_per_cell_s * 6.0,
    )


_WT = EventStats()
#: phenotype name -> event statistics
PHENOTYPES: dict[str, EventStats] = {"wt": _WT, "cpvt": _cpvt(_WT)}


@dataclass(frozen=True)
class OpticsParams:
    """Detector model: photons at rest, bleaching, shot noise, read noise and offset.

    ``resting_photons`` is the mean photon count of a resting-cytosol pixel (sets the SNR);
    counts = ``gain_counts_per_photon`` × Poisson(photons) + N(0, ``read_noise_counts``)
    + ``blank_counts``, rounded and clipped to uint16.
    """

    resting_photons: float = 12.0
    background_photons: float = 0.3
    gain_counts_per_photon: float = 8.0
    read_noise_counts: float = 6.0
    blank_counts: float = 100.0
    bleach_tau_s: float = 40.0


@dataclass(frozen=True)
class CellParams:
    """Cell geometry and resting-fluorescence structure (µm)."""

    striation_spacing_um: float = 1.8
    striation_contrast: float = 0.12
    edge_width_um: float = 0.6
    nucleus_brightness: float = 0.75
    inhomogeneity: float = 0.08


@dataclass(frozen=True)
class LinescanParams:
    """A line-scan recording ``(T, X)``: defaults 512 px at 0.14 µm/px, 1.5 ms/line.

    ``n_lines`` overrides ``duration_s`` when given. ``stats`` defaults to the preset of
    ``phenotype``.
    """

    phenotype: Phenotype = "wt"
    duration_s: float = 5.0
    n_lines: int | None = None
    n_pixels: int = 512
    pixel_um: float = 0.14
    dt_ms: float = 1.5
    stats: EventStats | None = None
    optics: OpticsParams = field(default_factory=lambda: OpticsParams(resting_photons=15.0))
    cell: CellParams = field(default_factory=CellParams)
    ignore_rim: bool = False

    @property
    def n_time(self) -> int:
        """Number of lines."""
        return self.n_lines if self.n_lines is not None else round(self.duration_s * 1e3 / self.dt_ms)


@dataclass(frozen=True)
class MovieParams:
    """A full-frame recording ``(T, Y, X)``: defaults 64×512 px at 0.2 µm/px, 6.8 ms/frame
    (Dotti et al. 2024).

    Spark and puff rates of ``stats`` (per 100 µm of line per s) are converted to areal rates
    with ``scan_band_um`` (the width of cell a line-scan effectively samples):
    areal rate per 100 µm² = line rate / ``scan_band_um``.
    """

    phenotype: Phenotype = "wt"
    duration_s: float = 3.4
    n_frames: int | None = None
    n_y: int = 64
    n_x: int = 512
    pixel_um: float = 0.2
    dt_ms: float = 6.8
    stats: EventStats | None = None
    optics: OpticsParams = field(default_factory=lambda: OpticsParams(resting_photons=10.0))
    cell: CellParams = field(default_factory=CellParams)
    scan_band_um: float = 2.0
    ignore_rim: bool = False

    @property
    def n_time(self) -> int:
        """Number of frames."""
        return self.n_frames if self.n_frames is not None else round(self.duration_s * 1e3 / self.dt_ms)


def resolve_stats(phenotype: str, stats: EventStats | None) -> EventStats:
    """The event statistics to use: ``stats`` if given, else the phenotype's preset."""
    if phenotype not in PHENOTYPES:
        raise ValueError(f"phenotype must be one of {sorted(PHENOTYPES)}, got {phenotype!r}")
    return stats if stats is not None else PHENOTYPES[phenotype]
