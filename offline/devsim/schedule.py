"""What happens in one recording: which release sites fire, when, how, and under which label.

Sparks are a Poisson process over the cell's release sites. Each spark's site lies at a random
distance from the scan line (line-scans: uniform in the cylinder of radius
``max_focal_distance_um`` around the line) or from the focal plane (movies: uniform in the
slab), which sets its subtype ``in_focus`` (< 0.5 µm), ``mid_focus`` (< 1 µm) or
``out_of_focus``. Some sparks are ``ember`` (long low-current release, still a spark) or
``macro`` (large current); some trigger a ``pair`` (a site 0.8–2 µm away fires 5–30 ms later;
both are marked) or a ``repeat`` (the same site again after 50–300 ms, with a current no larger
than the first: the SR has not refilled). Movies also get ``puff`` events (a cluster of
3–8 sites releasing for 50–300 ms, one instance) and both get waves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from offline.devsim.cell import CellLayout
from offline.devsim.diffusion import Release
from offline.devsim.params import DevParams, LinescanDevParams, MovieDevParams, draw
from offline.devsim.waves import WavePlan

IN_FOCUS_UM = 0.5
MID_FOCUS_UM = 1.0


@dataclass(frozen=True)
class Firing:
    """One release: site (x, y in µm; ``y`` is the lateral offset from a line-scan's line),
    axial distance ``z_um`` from the focal plane, onset time."""

    release: Release
    x_um: float
    y_um: float
    z_um: float
    onset_ms: float


@dataclass
class PlannedEvent:
    """A labelled event: a spark or puff made of firings, or a wave."""

    kind: str
    subtype: str
    firings: list[Firing] = field(default_factory=list)
    wave: WavePlan | None = None


@dataclass
class ReleaseLibrary:
    """The few releases one recording draws from (quantized so that solves are shared)."""

    sparks: list[Release]
    embers: list[Release]
    macros: list[Release]
    puffs: list[Release]

    @classmethod
    def draw(cls, params: DevParams, rng: np.random.Generator) -> ReleaseLibrary:
        def release(flux, plateau, decay, flux_step=0.5, time_step=1.0):
            return Release(max(flux_step, round(draw(rng, flux) / flux_step) * flux_step),
                           max(1.0, round(draw(rng, plateau) / time_step) * time_step),
                           round(draw(rng, decay)))

        sparks = [release(params.flux_pA, params.plateau_ms, params.decay_ms)
                  for _ in range(params.n_templates)]
        embers = [release(params.ember_flux_pA, params.ember_ms, params.decay_ms, 0.2, 10.0)
                  for _ in range(2)]
        macros = [release(params.macro_flux_pA, params.macro_plateau_ms, params.decay_ms, 2.0)]
        puffs = ([release(params.puff_flux_pA, params.puff_plateau_ms, params.decay_ms, 0.5, 5.0)
                  for _ in range(3)] if isinstance(params, MovieDevParams) else [])
        return cls(sparks, embers, macros, puffs)


def focus_subtype(distance_um: float) -> str:
    """``in_focus`` / ``mid_focus`` / ``out_of_focus`` by distance from the focus."""
    if distance_um < IN_FOCUS_UM:
        return "in_focus"
    return "mid_focus" if distance_um < MID_FOCUS_UM else "out_of_focus"


class Planner:
    """Draws the events of one recording (``plan()``)."""

    def __init__(self, params: DevParams, library: ReleaseLibrary, layout: CellLayout,
                 pixel_um: float, duration_ms: float, rng: np.random.Generator) -> None:
        self.params, self.library, self.layout = params, library, layout
        self.pixel_um, self.duration_ms, self.rng = pixel_um, duration_ms, rng
        self.is_linescan = isinstance(params, LinescanDevParams)

    def plan(self) -> list[PlannedEvent]:
        if self.params.empty or len(self.layout.sites_um) == 0:
            return []
        events: list[PlannedEvent] = []
        for _ in range(self._count(self._spark_rate())):
            events += self._spark()
        if not self.is_linescan:
            for _ in range(self._count(self.params.puff_rate_per_100um2_s
                                       * self.layout.cytosol_extent(self.pixel_um) / 100.0)):
                events.append(self._puff())
        for _ in range(self._count(self.params.wave_rate_per_s)):
            events.append(self._wave())
        return events

    def _spark_rate(self) -> float:
        """Expected sparks per second in the field."""
        extent = self.layout.cytosol_extent(self.pixel_um) / 100.0
        rate = (self.params.spark_rate_per_100um_s if self.is_linescan
                else self.params.spark_rate_per_100um2_s)
        return draw(self.rng, rate) * extent

    def _count(self, rate_per_s: float) -> int:
        return int(self.rng.poisson(rate_per_s * self.duration_ms / 1000.0))

    def _site(self) -> np.ndarray:
        return self.layout.sites_um[self.rng.integers(len(self.layout.sites_um))]

    def _focus(self) -> tuple[float, float, float]:
        """(lateral offset, axial offset, distance) of a site from the line / plane."""
        d_max = self.params.max_focal_distance_um
        if self.is_linescan:
            distance = d_max * math.sqrt(self.rng.random())
            angle = self.rng.uniform(0, 2 * math.pi)
            return distance * math.cos(angle), abs(distance * math.sin(angle)), distance
        z = d_max * self.rng.random()
        return 0.0, z, z

    def _spark(self) -> list[PlannedEvent]:
        rng, p, lib = self.rng, self.params, self.library
        site = self._site()
        lateral, z, distance = self._focus()
        onset = rng.uniform(-20.0, self.duration_ms - 20.0)
        kind_draw = rng.random()
        if kind_draw < p.ember_fraction:
            release, subtype = lib.embers[rng.integers(len(lib.embers))], "ember"
        elif kind_draw < p.ember_fraction + p.macro_fraction:
            release, subtype = lib.macros[0], "macro"
        else:
            release, subtype = lib.sparks[rng.integers(len(lib.sparks))], focus_subtype(distance)
        first = Firing(release, float(site[1]), float(site[0] + lateral), z, onset)
        event = PlannedEvent("spark", subtype, [first])
        out = [event]
        follow = rng.random()
        if follow < p.pair_fraction:
            out.append(self._pair_partner(first))
            if subtype not in ("ember", "macro"):
                event.subtype = "pair"
        elif follow < p.pair_fraction + p.repeat_fraction:
            out.append(self._repeat(first))
        return out

    def _pair_partner(self, first: Firing) -> PlannedEvent:
        rng = self.rng
        step = draw(rng, self.params.pair_distance_um, log=False)
        angle = 0.0 if self.is_linescan else rng.uniform(0, 2 * math.pi)
        sign = rng.choice([-1.0, 1.0])
        z = abs(first.z_um + rng.normal(0, 0.2))
        firing = Firing(self.library.sparks[rng.integers(len(self.library.sparks))],
                        first.x_um + sign * step * math.cos(angle),
                        first.y_um + step * math.sin(angle), z,
                        first.onset_ms + draw(rng, self.params.pair_delay_ms, log=False))
        return PlannedEvent("spark", "pair", [firing])

    def _repeat(self, first: Firing) -> PlannedEvent:
        rng = self.rng
        weaker = [r for r in self.library.sparks if r.flux_pA <= first.release.flux_pA]
        release = (weaker or [min(self.library.sparks, key=lambda r: r.flux_pA)])[
            rng.integers(max(1, len(weaker)))]
        delay = draw(rng, self.params.repeat_delay_ms, log=False)
        firing = Firing(release, first.x_um, first.y_um, first.z_um, first.onset_ms + delay)
        return PlannedEvent("spark", "repeat", [firing])

    def _puff(self) -> PlannedEvent:
        rng, p = self.rng, self.params
        centre = self._site()
        z0 = rng.uniform(0.0, 1.0)
        length = draw(rng, p.puff_duration_ms)
        start = rng.uniform(-20.0, self.duration_ms - 0.5 * length)
        radius = draw(rng, p.puff_radius_um)
        firings = []
        for _ in range(int(round(draw(rng, p.puff_sites, log=False)))):
            r, angle = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            for _ in range(int(rng.integers(1, 3))):
                release = self.library.puffs[rng.integers(len(self.library.puffs))]
                onset = start + rng.uniform(0.0, max(1.0, length - release.duration_ms))
                firings.append(Firing(release, float(centre[1] + r * math.cos(angle)),
                                      float(centre[0] + r * math.sin(angle)),
                                      abs(z0 + rng.normal(0, 0.15)), onset))
        return PlannedEvent("puff", "puff", firings)

    def _wave(self) -> PlannedEvent:
        rng, p = self.rng, self.params
        site = self._site()
        extent = rng.uniform(10.0, 40.0) if rng.random() < 0.35 else math.inf
        plan = WavePlan(x_um=float(site[1]), y_um=float(site[0]),
                        t0_ms=rng.uniform(0.0, 0.8 * self.duration_ms),
                        speed_um_per_ms=draw(rng, p.wave_speed_um_per_s) / 1000.0,
                        amplitude_dff0=draw(rng, p.wave_amplitude_dff0),
                        release_ms=draw(rng, p.wave_release_ms),
                        pump_scale=draw(rng, p.wave_pump_scale), extent_um=extent)
        return PlannedEvent("wave", "wave", wave=plan)
