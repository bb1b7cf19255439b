"""Classical per-ROI measurements of a structure image (no training needed).

* ``sarcomere_length_um``: the strongest peak of the 2-D power spectrum of the ROI (mean
  removed, apodized by a smoothed mask, zero-padded 2×) in the band 1.5–2.5 µm (myofibril spacing, ~1–1.5 µm, stays out), refined by
  parabolic interpolation in both axes; empty (NaN) when the peak is not ``min_peak_ratio``
  times the median power of the band (no periodic Z-discs to measure).
* ``orientation_order``: ``|Σ z| / Σ |z|`` over the ROI of the anisotropic part of the
  structure tensor ``z = (A_cc − A_rr) + 2i A_rc`` (skimage ``structure_tensor``): 1 when all
  striations share one direction, ≈ 0 for isotropic texture.
* ``orientation_spread``: circular SD (degrees, axial) of the myofibril direction measured at
  the sarcomere scale: the ROI (high-passed, apodized) is band-passed on a ring around
  1 / 1.9 µm⁻¹ in the 2-D spectrum, so Z-discs, beaded rows and the Z-disc repeat next to fibres
  all become one grating along the myofibril; the structure tensor of that image (integrated
  over 1.5 µm) gives the direction, and ``sqrt(-2 ln R) / 2`` of its magnitude-weighted
  resultant R over the chosen pixels is the spread. On the raw image the tensor of beaded rows
  points 90° off and isolated fibres are noisy; at the sarcomere scale every oriented pattern
  agrees (checked against the simulator's rendered directions).
* GLCM texture (Gerbin et al. 2021): correlation of grey-level co-occurrence matrices
  (skimage ``graycomatrix``/``graycoprops``) at distances 0.15–3 µm in four directions;
  ``glcm_max_cv`` is the largest coefficient of variation across directions, and
  ``glcm_peak_height`` / ``glcm_peak_distance_um`` the most prominent first local maximum of
  correlation vs distance (the sarcomere repeat) and where it lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import graycomatrix, graycoprops, structure_tensor

SARCOMERE_BAND_UM = (1.5, 2.5)
#: ring band-pass of :func:`orientation_spread`: centre period and radial width (Gaussian SD)
SPREAD_PERIOD_UM = 1.9
SPREAD_RING_WIDTH_PER_UM = 0.08
SPREAD_INTEGRATION_UM = 1.5
GLCM_LEVELS = 16
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_MAX_SIDE_PX = 256


@dataclass
class Periodicity:
    """Result of the spectral sarcomere measurement."""

    sarcomere_length_um: float      # NaN when not measured
    peak_ratio: float               # spectral peak / median power of the band
    direction_deg: float            # direction of the repeat (myofibril axis), from +x


def _apodized(crop: np.ndarray, mask: np.ndarray, pixel_um: float) -> np.ndarray:
    """High-passed (Gaussian, σ = 1 µm: keeps ≥ 99 % of the sarcomere band) and apodized by
    the mask eroded by 0.5 µm and smoothed, so cell edges and shading leave the band."""
    inner = ndimage.binary_erosion(mask, iterations=max(1, int(0.5 / pixel_um)))
    if inner.sum() < 16:
        inner = mask
    weight = ndimage.gaussian_filter(inner.astype(np.float32), 0.5 / pixel_um) * inner
    detail = crop - ndimage.gaussian_filter(crop, 1.0 / pixel_um)
    values = detail[inner]
    return (detail - values.mean()) / (values.std() + 1e-9) * weight


def sarcomere_periodicity(crop: np.ndarray, mask: np.ndarray, pixel_um: float,
                          min_peak_ratio: float = 30.0) -> Periodicity:
    """Sarcomere length from the power spectrum of one ROI (see module docstring)."""
    if mask.sum() * pixel_um ** 2 < 4 * SARCOMERE_BAND_UM[1] ** 2:
        return Periodicity(np.nan, 0.0, np.nan)
    signal = _apodized(crop.astype(np.float32), mask, pixel_um)
    size = [2 * n for n in signal.shape]
    power = np.abs(np.fft.rfft2(signal, s=size)) ** 2
    fy = np.fft.fftfreq(size[0], d=pixel_um)[:, None]
    fx = np.fft.rfftfreq(size[1], d=pixel_um)[None, :]
    radius = np.hypot(fy, fx)
    band = (radius >= 1 / SARCOMERE_BAND_UM[1]) & (radius <= 1 / SARCOMERE_BAND_UM[0])
    if not band.any():
        return Periodicity(np.nan, 0.0, np.nan)
    in_band = np.where(band, power, 0.0)
    iy, ix = np.unravel_index(np.argmax(in_band), in_band.shape)
    ratio = float(power[iy, ix] / (np.median(power[band]) + 1e-12))
    dy = _parabolic_offset(power[(iy - 1) % size[0], ix], power[iy, ix],
                           power[(iy + 1) % size[0], ix])
    dx = _parabolic_offset(power[iy, ix - 1], power[iy, ix], power[iy, ix + 1]) \
        if 0 < ix < power.shape[1] - 1 else 0.0
    freq_y = fy[iy, 0] + dy / (size[0] * pixel_um)
    freq_x = fx[0, ix] + dx / (size[1] * pixel_um)
    frequency = float(np.hypot(freq_y, freq_x))
    direction = float(np.rad2deg(np.arctan2(freq_y, freq_x)) % 180.0)
    length = 1 / frequency if ratio >= min_peak_ratio else np.nan
    return Periodicity(length, ratio, direction)


def _parabolic_offset(left: float, centre: float, right: float) -> float:
    """Sub-sample offset of a peak from three samples (in log power: Gaussian-like peaks)."""
    left, centre, right = (np.log(max(v, 1e-30)) for v in (left, centre, right))
    denominator = left - 2 * centre + right
    return float(np.clip(0.5 * (left - right) / denominator, -0.5, 0.5)) if denominator < 0 \
        else 0.0


def orientation_order(crop: np.ndarray, mask: np.ndarray, pixel_um: float,
                      across: np.ndarray | None = None) -> tuple[float, float]:
    """Orientation order parameter (0–1) and the mean gradient direction (degrees from +x).

    For striations the dominant gradient runs along the myofibrils, so the direction is the
    myofibril axis. Pixels marked ``across`` (fibres: their gradient runs across the
    myofibril) are turned by 90° first, so fibres and Z-discs of one direction agree.
    """
    a_rr, a_rc, a_cc = structure_tensor(crop.astype(np.float32), sigma=0.15 / pixel_um + 0.5,
                                        order="rc")
    a_rr, a_rc, a_cc = (ndimage.gaussian_filter(a, 0.6 / pixel_um) for a in (a_rr, a_rc, a_cc))
    z = (a_cc - a_rr) + 2j * a_rc
    if across is not None:
        z = np.where(across, -z, z)
    z = z[mask]
    total = np.abs(z).sum()
    if total <= 0:
        return np.nan, np.nan
    mean = z.sum()
    # angle of the gradient: (x, y) = (cos, sin) with rows pointing down (+y)
    return float(np.abs(mean) / total), float(np.rad2deg(np.angle(mean) / 2) % 180.0)


def sarcomere_band(crop: np.ndarray, mask: np.ndarray, pixel_um: float) -> np.ndarray:
    """``crop`` without its slow background, tapered to ``mask`` and band-passed to a ring
    around the sarcomere period (:data:`SPREAD_PERIOD_UM`), float32, the crop's shape."""
    crop = crop.astype(np.float32)
    detail = crop - ndimage.gaussian_filter(crop, 1.0 / pixel_um)
    detail *= ndimage.gaussian_filter(mask.astype(np.float32), 0.3 / pixel_um)
    pad = int(np.ceil(3.0 / pixel_um))
    padded = np.pad(detail, pad)
    fy = np.fft.fftfreq(padded.shape[0], d=pixel_um)[:, None]
    fx = np.fft.rfftfreq(padded.shape[1], d=pixel_um)[None, :]
    ring = np.exp(-0.5 * ((np.hypot(fy, fx) - 1 / SPREAD_PERIOD_UM)
                          / SPREAD_RING_WIDTH_PER_UM) ** 2)
    banded = np.fft.irfft2(np.fft.rfft2(padded) * ring, s=padded.shape)
    return banded[pad:pad + crop.shape[0], pad:pad + crop.shape[1]].astype(np.float32)


def orientation_spread(crop: np.ndarray, mask: np.ndarray, pixel_um: float,
                       pixels: np.ndarray | None = None) -> float:
    """Circular SD (degrees) of the myofibril direction at the sarcomere scale over ``pixels``
    (default: the whole ``mask``); NaN under 20 pixels. See the module docstring."""
    pixels = mask if pixels is None else pixels & mask
    if pixels.sum() < 20:
        return float("nan")
    banded = sarcomere_band(crop, mask, pixel_um)
    a_rr, a_rc, a_cc = structure_tensor(banded, sigma=0.15 / pixel_um + 0.5, order="rc")
    a_rr, a_rc, a_cc = (ndimage.gaussian_filter(a, SPREAD_INTEGRATION_UM / pixel_um)
                        for a in (a_rr, a_rc, a_cc))
    z = ((a_cc - a_rr) + 2j * a_rc)[pixels]
    total = np.abs(z).sum()
    if total <= 0:
        return float("nan")
    resultant = np.clip(np.abs(z.sum()) / total, 1e-12, 1.0)
    return float(np.rad2deg(np.sqrt(-2 * np.log(resultant)) / 2))


def glcm_features(crop: np.ndarray, mask: np.ndarray, pixel_um: float) -> dict[str, float]:
    """Gerbin et al.'s GLCM texture features (see module docstring)."""
    crop, mask = _central(crop, mask)
    values = crop[mask]
    lo, hi = np.percentile(values, [1, 99.5]) if values.size else (0.0, 1.0)
    levels = np.clip((crop - lo) / (hi - lo + 1e-9) * (GLCM_LEVELS - 1), 0, GLCM_LEVELS - 1)
    quantized = np.where(mask, levels.astype(np.uint8) + 1, 0).astype(np.uint8)
    step = max(1, int(round(0.15 / pixel_um)))
    distances = np.arange(step, int(round(3.0 / pixel_um)) + 1, step)
    matrices = graycomatrix(quantized, distances, GLCM_ANGLES, levels=GLCM_LEVELS + 1)
    matrices = matrices[1:, 1:].astype(np.float64)  # drop pairs touching outside the mask
    sums = matrices.sum(axis=(0, 1), keepdims=True)
    correlation = graycoprops(matrices / np.maximum(sums, 1), "correlation")  # (d, angle)
    spread = correlation.std(axis=1) / (np.abs(correlation.mean(axis=1)) + 1e-3)
    height, distance_um = _first_peak(correlation, distances * pixel_um)
    return {"glcm_max_cv": float(np.clip(spread.max(), 0, 10)), "glcm_peak_height": height,
            "glcm_peak_distance_um": distance_um}


def _first_peak(correlation: np.ndarray, distances_um: np.ndarray) -> tuple[float, float]:
    best_height, best_distance = 0.0, 0.0
    for curve in correlation.T:
        for i in range(1, len(curve) - 1):
            if distances_um[i] >= 0.8 and curve[i] > curve[i - 1] and curve[i] >= curve[i + 1]:
                height = float(curve[i] - curve[:i].min())
                if height > best_height:
                    best_height, best_distance = height, float(distances_um[i])
                break
    return best_height, best_distance


def _central(crop: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most GLCM_MAX_SIDE_PX × GLCM_MAX_SIDE_PX around the mask's centroid (speed)."""
    if max(crop.shape) <= GLCM_MAX_SIDE_PX:
        return crop, mask
    cy, cx = (int(v) for v in ndimage.center_of_mass(mask))
    half = GLCM_MAX_SIDE_PX // 2
    ys = slice(max(cy - half, 0), max(cy - half, 0) + GLCM_MAX_SIDE_PX)
    xs = slice(max(cx - half, 0), max(cx - half, 0) + GLCM_MAX_SIDE_PX)
    return crop[ys, xs], mask[ys, xs]
