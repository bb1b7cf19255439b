"""Each planned event's own noise-free ΔF/F0 on the recording's pixel grid.

A firing's radial field (:func:`offline.devsim.diffusion.spark_template`) is scaled by the
recording's responsive-dye fraction, blurred for its focal distance
(:class:`offline.devsim.optics.FocalBlur`) and read at every pixel's distance from the site
and every pixel's sampling time (a movie's rows are scanned one after another, so row ``r`` of
frame ``f`` is seen at ``f·dt + r·row_dt``). Events are rendered on a crop around them; a
pixel outside the cell has no dye and no ΔF/F0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offline.devsim.calibration import RecordingSetup
from offline.devsim.cell import CellLayout, smooth_noise
from offline.devsim.diffusion import RadialGrid, Release, SolverSettings, spark_template
from offline.devsim.optics import Z_STEP_UM, FocalBlur, ObservedField
from offline.devsim.schedule import Firing, PlannedEvent
from offline.devsim.waves import paint_wave, wave_time_course

CROP_RADIUS_UM = 4.5


@dataclass
class Contribution:
    """An event's ΔF/F0 on the crop ``values`` whose first pixel is at ``origin``."""

    kind: str
    subtype: str
    origin: tuple[int, ...]
    values: np.ndarray

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(o, o + n) for o, n in zip(self.origin, self.values.shape, strict=True))

    @property
    def peak_dff0(self) -> float:
        return float(self.values.max()) if self.values.size else 0.0


class Renderer:
    """Renders planned events of one recording (observed fields cached per focal distance)."""

    def __init__(self, setup: RecordingSetup, layout: CellLayout, rng: np.random.Generator):
        self.setup, self.layout = setup, layout
        grid_r = RadialGrid.build(*SolverSettings().grid).centers_um
        self.blur = FocalBlur(setup.psf, grid_r, rho_max_um=CROP_RADIUS_UM + 1.0)
        self._observed: dict[tuple[Release, float], ObservedField] = {}
        self.wander = (1.0 + 0.1 * smooth_noise(rng, setup.spatial_shape,
                                                  10.0 / setup.pixel_um)).astype(np.float32)

    # ------------------------------------------------------------------ geometry
    def times_ms(self, frames: slice, rows: slice | None = None) -> np.ndarray:
        """Sampling time of each line (``(n, 1)``) or of each row of each frame (``(n, Y, 1)``)."""
        t = np.arange(frames.start, frames.stop, dtype=np.float32) * self.setup.dt_ms
        if self.setup.stream_kind.is_linescan:
            return t[:, None]
        row = np.arange(rows.start, rows.stop, dtype=np.float32) * self.setup.row_dt_ms
        return t[:, None, None] + row[None, :, None]

    def coords_um(self, rows: slice | None, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """(y, x) in µm of the crop's pixels (``y`` = 0 along a line-scan's line)."""
        px = self.setup.pixel_um
        x = np.arange(cols.start, cols.stop, dtype=np.float32) * px
        if self.setup.stream_kind.is_linescan:
            return np.zeros(1, np.float32), x
        y = np.arange(rows.start, rows.stop, dtype=np.float32) * px
        return y[:, None], x[None, :]

    # ------------------------------------------------------------------ events
    def observed(self, release: Release, z_um: float) -> ObservedField:
        key = (release, round(round(z_um / Z_STEP_UM) * Z_STEP_UM, 4))
        if key not in self._observed:
            template = spark_template(release, self.setup.cytosol)
            t_step = float(template.t_ms[1] - template.t_ms[0])
            field = self.blur.observe(template.dff0 * np.float32(self.setup.dff0_scale), t_step,
                                      key[1])
            self._observed[key] = field
        return self._observed[key]

    def render(self, event: PlannedEvent) -> Contribution | None:
        """The event's contribution, or None when it lies outside the recording."""
        if event.wave is not None:
            return self._render_wave(event)
        return self._render_firings(event)

    def _span(self, lo: float, hi: float, step: float, n: int) -> slice | None:
        start, stop = max(0, int(math.floor(lo / step))), min(n, int(math.ceil(hi / step)) + 1)
        return slice(start, stop) if stop > start else None

    def _render_firings(self, event: PlannedEvent) -> Contribution | None:
        s, px = self.setup, self.setup.pixel_um
        fields = [self.observed(f.release, f.z_um) for f in event.firings]
        t_lo = min(f.onset_ms for f in event.firings)
        t_hi = max(f.onset_ms + o.duration_ms for f, o in zip(event.firings, fields, strict=True))
        frames = self._span(t_lo, t_hi, s.dt_ms, s.shape[0])
        cols = self._span(min(f.x_um for f in event.firings) - CROP_RADIUS_UM,
                          max(f.x_um for f in event.firings) + CROP_RADIUS_UM, px, s.shape[-1])
        rows, linescan = None, s.stream_kind.is_linescan
        if not linescan:
            rows = self._span(min(f.y_um for f in event.firings) - CROP_RADIUS_UM,
                              max(f.y_um for f in event.firings) + CROP_RADIUS_UM, px, s.shape[1])
        if frames is None or cols is None or (not linescan and rows is None):
            return None
        times = self.times_ms(frames, rows)
        y, x = self.coords_um(rows, cols)
        values = sum(self._firing(f, o, times, y, x) for f, o in zip(event.firings, fields,
                                                                       strict=True))
        spatial = (cols,) if linescan else (rows, cols)
        values = values * self.layout.inside[spatial][None]
        origin = (frames.start,) + tuple(sl.start for sl in spatial)
        return Contribution(event.kind, event.subtype, origin, values.astype(np.float32))

    @staticmethod
    def _firing(firing: Firing, field: ObservedField, times: np.ndarray, y: np.ndarray,
                x: np.ndarray) -> np.ndarray:
        rho = np.hypot(x - firing.x_um, y - firing.y_um)
        return field.sample(rho[None], times - firing.onset_ms)

    def _render_wave(self, event: PlannedEvent) -> Contribution | None:
        s, plan = self.setup, event.wave
        course = wave_time_course(s.cytosol, plan, s.dff0_scale)
        linescan = s.stream_kind.is_linescan
        extent_um = s.shape[-1] * s.pixel_um + (0 if linescan else s.shape[1] * s.pixel_um)
        t_hi = plan.t0_ms + extent_um / plan.speed_um_per_ms + course.duration_ms
        frames = self._span(plan.t0_ms, t_hi, s.dt_ms, s.shape[0])
        if frames is None:
            return None
        rows = None if linescan else slice(0, s.shape[1])
        cols = slice(0, s.shape[-1])
        values = paint_wave(plan, course, self.times_ms(frames, rows), self.coords_um(rows, cols),
                            self.layout.inside, self.layout.nucleus, self.wander)
        return Contribution("wave", event.subtype, (frames.start,) + (0,) * (len(s.shape) - 1),
                            values.astype(np.float32))
