"""Does the characterization budget (:mod:`engine.burst`) ever bind on the evaluation data?

It must not: recordings within the documented rate give the same events as without a
budget. Runs the default models over the README's evaluation sets (test seeds, the detector
``analyze``/``serve`` run) and prints, per set: events, events flagged ``burst`` (expected 0)
and the fewest tokens left in any stream's bucket (of 64 for line-scans, 256 for movies).

Usage: ``python bench/burst_headroom.py [--n 12]`` (minutes: the movie sets run the network)
"""

from __future__ import annotations

import argparse
import math

from engine import burst
from engine.pipeline import analyze_array
from offline.commands.evaluate import load_data
from offline.experiments.validation import RAISED

LINE, MOVIE = "engine/models/default/linescan-accurate", "engine/models/default/movie"


def _watch_tokens() -> dict:
    """Record the lowest token count any bucket reaches."""
    low = {"tokens": math.inf}
    take = burst.CharacterizationBudget.take

    def watched(self, frame: int) -> bool:
        ok = take(self, frame)
        low["tokens"] = min(low["tokens"], self.tokens)
        return ok

    burst.CharacterizationBudget.take = watched
    return low


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="recordings per set")
    n = parser.parse_args().n
    sets = [(LINE, f"sim:linescan:{n}", {}, "auto"), (LINE, f"dev:linescan:{n}", {}, "auto"),
            (LINE, f"dev:linescan-empty:{max(1, n // 2)}", {}, "auto"),
            (MOVIE, f"sim:movie:{n}", RAISED, "network"), (MOVIE, f"dev:movie:{n}", {}, "network")]
    low = _watch_tokens()
    for model, spec, overrides, detector in sets:
        low["tokens"] = math.inf
        events = flagged = 0
        for rec in load_data(spec, overrides, 0):
            result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                                   model_dir=model, blank=rec.blank, detector=detector)
            events += len(result.events)
            flagged += sum(burst.BURST_FLAG in e.flags.split(";") for e in result.events)
        print(f"{spec:<22} {detector:<8} events {events:>5}  burst-flagged {flagged}  "
              f"fewest tokens left {low['tokens']:.1f}", flush=True)


if __name__ == "__main__":
    main()
