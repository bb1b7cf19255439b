"""Bounded cost per event: a characterization budget per stream, in data time.

A burst of candidate events (an artefact, a brightness step, a wave breaking into pieces) must
not stall a stream's analysis. Each candidate costs a significance test (≈ 1.5 ms of CPU) and a
characterization (≈ 6 ms; ``bench/burst.py`` measures both). :class:`CharacterizationBudget` is
a token bucket over the stream's *data* time: it holds at most ``capacity`` tokens and gains
``rate_per_s`` tokens per second of recording. Every candidate the tracker closes takes one
token, in event-id order; a candidate that finds the bucket empty is still reported (kind,
position, times, score) but is neither tested for significance nor characterized: its five
parameters are empty and its ``flags`` say ``burst`` (:mod:`engine.honesty`). The stream's
statistics carry ``burst`` and the count, and the quality report warns.

Cost bound: a block of ``d`` seconds of data costs at most ``capacity + rate_per_s · d``
full characterizations, however many candidates it holds.

Because the bucket runs on frame indices (an event's closing frame, which does not depend on
how frames were chunked) and events close in id order, ``analyze`` and ``serve`` spend the
budget on the same events. Recordings within the rate never touch it: their results are
unchanged. Defaults (per stream kind; :data:`DEFAULT_BUDGETS`), for a frame of the reference
extent (:data:`REFERENCE_EXTENT_UM`: a 512-px line, a 64×512-px field, at 0.2 µm):

==========  ========  ===========  =================================================
kind        capacity  rate (1/s)   why
==========  ========  ===========  =================================================
line-scan   64        32           ≈ 5× a CPVT cell's spark rate on a 512-px line
movie       256       128          ≈ 2× a CPVT cell's sparks + puffs on 64×512 px
==========  ========  ===========  =================================================

A longer line or a larger field holds proportionally more sparks at the same rate per µm, so
:func:`default_budget` scales both numbers with the frame's extent in µm (µm² for movies) over
the reference one, never below the defaults: a 1,024-px line at 0.2 µm gets 128 and 64 per s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from acquisition.stream_kind import StreamKind

log = logging.getLogger(__name__)

#: flag token of an event reported without significance test and characterization
BURST_FLAG = "burst"


@dataclass(frozen=True)
class BudgetLimits:
    """Token bucket size (events) and refill rate (events per second of data)."""

    capacity: float
    rate_per_s: float


DEFAULT_BUDGETS = {
    StreamKind.LINESCAN: BudgetLimits(capacity=64, rate_per_s=32),
    StreamKind.MOVIE: BudgetLimits(capacity=256, rate_per_s=128),
}
#: the frame extent the defaults are written for: µm of line, µm² of field (0.2-µm pixels)
REFERENCE_EXTENT_UM = {StreamKind.LINESCAN: 512 * 0.2, StreamKind.MOVIE: 64 * 512 * 0.2**2}


def default_budget(kind: StreamKind, frame_shape: tuple[int, ...],
                   pixel_um: float) -> BudgetLimits:
    """:data:`DEFAULT_BUDGETS` for ``kind`` scaled up with the frame's extent (``frame_shape``
    pixels of ``pixel_um``) over :data:`REFERENCE_EXTENT_UM`; never below the defaults."""
    extent = math.prod(frame_shape) * pixel_um ** len(frame_shape)
    scale = max(1.0, extent / REFERENCE_EXTENT_UM[kind]) if extent > 0 else 1.0
    base = DEFAULT_BUDGETS[kind]
    return BudgetLimits(capacity=base.capacity * scale, rate_per_s=base.rate_per_s * scale)


class CharacterizationBudget:
    """Token bucket over data time; see the module docstring.

    Parameters
    ----------
    limits : BudgetLimits
    dt_ms : float
        Frame (line) interval: converts frame indices to data time.
    stream : str
        For the log.
    """

    def __init__(self, limits: BudgetLimits, dt_ms: float, stream: str = "") -> None:
        self.limits = limits
        self.dt_ms = dt_ms
        self.stream = stream
        self.tokens = float(limits.capacity)
        self.n_over = 0  # candidates reported without characterization (cumulative)
        self._frame = 0

    def take(self, frame: int) -> bool:
        """Spend one token for a candidate closing at ``frame``; False when the bucket is
        empty (the candidate is then reported uncharacterized)."""
        if frame > self._frame:
            gained = (frame - self._frame) * self.dt_ms * 1e-3 * self.limits.rate_per_s
            self.tokens = min(float(self.limits.capacity), self.tokens + gained)
            self._frame = frame
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.n_over += 1
        if self.n_over == 1 or self.n_over % 1000 == 0:  # bounded log
            log.warning("stream %s: burst of candidate events at frame %d (more than %g at "
                        "once, %g per s of data); %d reported without characterization so far",
                        self.stream, frame, self.limits.capacity, self.limits.rate_per_s,
                        self.n_over)
        return False
