"""Entry points: one development recording from a seed, and a source of many."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offline.datasets import LabeledRecording, LazyRecordings
from offline.devsim.calibration import RecordingSetup, draw_setup
from offline.devsim.cell import CellLayout, linescan_layout, movie_layout
from offline.devsim.detector import acquire
from offline.devsim.params import DevParams, LinescanDevParams, MovieDevParams, with_overrides
from offline.devsim.render import Renderer
from offline.devsim.schedule import PlannedEvent, Planner, ReleaseLibrary
from offline.devsim.template_noise import with_template_noise
from offline.devsim.truth import GroundTruth, build_truth

log = logging.getLogger(__name__)

#: second RNG key: dev-set seeds never share a stream with the training simulator's
DEV_STREAM = 0xDE5
KINDS = {"linescan": LinescanDevParams, "movie": MovieDevParams}


@dataclass
class DevRecording:
    """A generated recording with everything behind it (for plots, tests and debugging)."""

    recording: LabeledRecording
    truth: GroundTruth
    setup: RecordingSetup
    layout: CellLayout
    planned: list[PlannedEvent]


def generate(params: DevParams, seed: int, name: str = "") -> DevRecording:
    """One recording drawn from ``params`` with ``seed`` (deterministic)."""
    started = time.perf_counter()
    rng = np.random.default_rng([seed, DEV_STREAM])
    setup = draw_setup(params, rng)
    if setup.stream_kind.is_linescan:
        layout = linescan_layout(setup.shape[1], setup.pixel_um, params, rng)
    else:
        layout = movie_layout(setup.shape[1], setup.shape[2], setup.pixel_um, params, rng)
    library = ReleaseLibrary.draw(params, rng)
    planned = Planner(params, library, layout, setup.pixel_um, setup.duration_ms, rng).plan()
    renderer = Renderer(setup, layout, rng)
    contributions = [c for c in map(renderer.render, planned) if c is not None and c.peak_dff0 > 0]
    cell = name or f"dev-{setup.stream_kind.value}-{seed}"
    truth = build_truth(contributions, setup.shape, setup.dt_ms, setup.pixel_um, cell,
                        params.truth_fraction_of_peak, params.ignore_below_dff0)
    signal = with_template_noise(truth.clean_dff0, contributions, params, seed)
    data = acquire(signal, layout, setup, rng)
    recording = LabeledRecording(
        data=data, class_mask=truth.class_mask, instance_mask=truth.instance_mask,
        pixel_um=setup.pixel_um, dt_ms=setup.dt_ms, axes=setup.stream_kind.axes,
        blank=setup.detector.offset_counts, events=truth.events, name=cell, cell=cell)
    log.debug("%s: %s, %.3f µm/px, %.2f ms, %d planned → %d labelled events in %.1f s", cell,
              setup.shape, setup.pixel_um, setup.dt_ms, len(planned), len(truth.events),
              time.perf_counter() - started)
    return DevRecording(recording, truth, setup, layout, planned)


def dev_params(kind: str, overrides: Mapping[str, Any] | None = None) -> DevParams:
    """Default parameters of ``kind`` (``"linescan"`` / ``"movie"``) with ``overrides``."""
    if kind not in KINDS:
        raise ValueError(f"dev-set kind must be one of {sorted(KINDS)}, got {kind!r}")
    return with_overrides(KINDS[kind](), dict(overrides or {}))


def dev_linescan(seed: int = 0, **overrides: Any) -> LabeledRecording:
    """A development line-scan ``(T, X)`` (see :mod:`offline.devsim`)."""
    return generate(dev_params("linescan", overrides), seed).recording


def dev_movie(seed: int = 0, **overrides: Any) -> LabeledRecording:
    """A development movie ``(T, Y, X)`` (see :mod:`offline.devsim`)."""
    return generate(dev_params("movie", overrides), seed).recording


@dataclass
class DevSource:
    """A deterministic stream of development recordings with the interface of
    :class:`offline.datasets.SimulatedSource` (``recording(i)``, iteration, ``take(n)``).

    ``kind`` selects :class:`LinescanDevParams` or :class:`MovieDevParams`; ``params`` overrides
    their fields (a scalar for a range fixes it; ``empty=True`` gives recordings without
    events); recording ``i`` is drawn with seed ``seed + i``.
    """

    kind: str
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._params = dev_params(self.kind, self.params)

    def recording(self, index: int) -> LabeledRecording:
        """The ``index``-th recording."""
        seed = self.seed + index
        return generate(self._params, seed, name=f"dev-{self.kind}-{seed}").recording

    def __iter__(self) -> Iterator[LabeledRecording]:
        return map(self.recording, itertools.count())

    def take(self, n: int) -> list[LabeledRecording]:
        """The first ``n`` recordings."""
        return list(map(self.recording, range(n)))

    def lazy(self, n: int) -> LazyRecordings:
        """The first ``n`` recordings, each made when read."""
        return LazyRecordings(self.recording, n)
