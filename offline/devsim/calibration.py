"""One recording's concrete calibration, optics, dye and detector, drawn from the ranges."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from acquisition.stream_kind import StreamKind
from offline.devsim.kinetics import INDICATORS, Cytosol
from offline.devsim.optics import ConfocalPSF
from offline.devsim.params import DevParams, LinescanDevParams, MovieDevParams, draw


@dataclass(frozen=True)
class Detector:
    """Photon budget and the detector's counts: ``offset + gain·Poisson + Normal(0, read)``."""

    resting_photons: float
    gain_counts_per_photon: float
    read_noise_counts: float
    offset_counts: float
    column_gain_sd: float
    column_offset_sd_counts: float
    flicker_sd: float
    drift_amplitude: float
    bleach_fraction: float
    saturation_counts: float


@dataclass(frozen=True)
class RecordingSetup:
    """Everything fixed for one recording.

    ``shape`` is ``(T, X)`` or ``(T, Y, X)``; ``row_dt_ms`` is the time between the rows of a
    frame (0 for line-scans and for movies without row timing).
    """

    stream_kind: StreamKind
    shape: tuple[int, ...]
    pixel_um: float
    dt_ms: float
    row_dt_ms: float
    psf: ConfocalPSF
    cytosol: Cytosol
    dff0_scale: float
    detector: Detector

    @property
    def duration_ms(self) -> float:
        return self.shape[0] * self.dt_ms

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[1:]


def draw_setup(params: DevParams, rng: np.random.Generator) -> RecordingSetup:
    """Calibration, optics, dye and detector of one recording."""
    pixel_um = draw(rng, params.pixel_um)
    dt_ms = draw(rng, params.dt_ms)
    n_t = max(16, int(round(draw(rng, params.duration_s, log=False) * 1000.0 / dt_ms)))
    if isinstance(params, LinescanDevParams):
        kind, shape, row_dt = StreamKind.LINESCAN, (n_t, int(rng.choice(params.n_px_choices))), 0.0
    elif isinstance(params, MovieDevParams):
        rows = int(round(draw(rng, params.n_rows, log=False)))
        cols = int(round(draw(rng, params.n_cols, log=False)))
        kind, shape = StreamKind.MOVIE, (n_t, rows, cols)
        row_dt = dt_ms / rows if params.row_scan_timing else 0.0
    else:
        raise TypeError(f"expected LinescanDevParams or MovieDevParams, got {type(params).__name__}")
    psf = ConfocalPSF(draw(rng, params.psf_fwhm_xy_um), draw(rng, params.psf_fwhm_z_um))
    indicator = INDICATORS[str(rng.choice(list(params.dyes)))]
    cytosol = dataclasses.replace(Cytosol(), indicator=indicator)
    return RecordingSetup(stream_kind=kind, shape=shape, pixel_um=pixel_um, dt_ms=dt_ms,
                          row_dt_ms=row_dt, psf=psf, cytosol=cytosol,
                          dff0_scale=draw(rng, params.responsive_fraction, log=False),
                          detector=_draw_detector(params, rng))


def _draw_detector(params: DevParams, rng: np.random.Generator) -> Detector:
    snr = draw(rng, params.resting_snr)
    gain = draw(rng, params.gain_counts_per_photon)
    return Detector(
        resting_photons=snr**2,
        gain_counts_per_photon=gain,
        read_noise_counts=gain * draw(rng, params.read_noise_photons),
        offset_counts=draw(rng, params.offset_counts),
        column_gain_sd=draw(rng, params.column_gain_sd),
        column_offset_sd_counts=draw(rng, params.column_offset_sd_counts, log=False),
        flicker_sd=draw(rng, params.flicker_sd),
        drift_amplitude=draw(rng, params.drift_amplitude, log=False),
        bleach_fraction=draw(rng, params.bleach_fraction, log=False),
        saturation_counts=float(params.saturation_counts))
