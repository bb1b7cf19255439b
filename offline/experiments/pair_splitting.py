"""The pair split's rule (:mod:`engine.pair_split`) chosen on validation line-scans.

``python -m offline.experiments.pair_splitting --n 24 --n-sim 8`` runs the default line-scan
detector on development validation line-scans (seeds ``DEV_VAL_SEED``+) and the simulator's
validation split, fits one and two spark shapes to every spark part the dip split leaves
(:func:`engine.pair_split.fit_pair`; no rule applied, nothing split), and labels each fit by
the annotation under its two shapes' peaks: **two** (two different annotated events: a
merged pair or neighbours, a split would be right), **same** (one annotated event: a split
would cut it), or **other** (a peak on background or an ignored pixel). For every rule of the
grid (``min_gain_fraction`` × ``min_separation_um`` × ``min_peak_sd`` × ``min_peak_ratio`` ×
``min_excess_explained`` × ``min_delay_ms`` × ``max_width_ratio``)
it counts the fits it would split in each label on each generator and prints the rules with
the largest development *two* − *same* − *other*; the first is the choice. Validation data
only: the test seeds are never read. Confirm a choice on fresh recordings with ``castream
evaluate``-style scores: ``--confirm '{"pair_split_min_gain_fraction": 0.015}' --offset 24
--n 48`` (one-to-one spark F1, the pairs matched once, the characterization errors; a
JSON list scores several rules on the same recordings).

``--faint`` ranks instead a *second* rule for faint pairs on top of the model's own
(``pair_split_faint_*``: a piece either rule accepts is split; grid :data:`FAINT_GRID`, the
gain and the peak ratio are the first rule's), the same net and ties.

``--template-noise 0.1,0.3`` adds the same development recordings with single sparks that
carry a recorded shape's noise (:mod:`offline.devsim.template_noise`), whose fits count in
the net too: a rule must not cut lumpy single sparks. The shipped rule was chosen that way
(docs/RESULTS.md, "Pairs split where a second shape explains the misfit"); ``--dump`` /
``--load`` keep the fits for ranking again without fitting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock

from scipy import ndimage

from engine import region_instances
from engine.models.postprocess_file import PostprocessParams
from engine.pair_split import PairRule, _peak_time, features, fit_pair
from offline.evaluate import evaluate, run_engine
from offline.experiments.hybrid_patches import MODELS, patched
from offline.experiments.validation import (
    add_set_arguments,
    add_template_noise_argument,
    sets_from_arguments,
)

log = logging.getLogger(__name__)

GRID = {"min_gain_fraction": (0.0, 0.01, 0.015, 0.02, 0.03),
        "min_separation_um": (0.6, 0.8, 1.0, 1.2),
        "min_peak_sd": (5.0, 7.0, 10.0),
        "min_peak_ratio": (0.0, 0.3, 0.4),
        "min_excess_explained": (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        "min_delay_ms": (0.0, 3.0, 5.0),
        "max_width_ratio": (math.inf, 2.5, 2.0)}
LABELS = ("two", "same", "other")
#: the second rule's grid (``--faint``): fainter lower peaks, stricter other conditions
FAINT_GRID = {"min_separation_um": (0.6, 0.8, 1.0),
              "min_peak_sd": (5.0, 6.0, 7.0, 8.0),
              "min_excess_explained": (0.6, 0.7, 0.8, 0.9),
              "min_delay_ms": (5.0, 8.0, 10.0),
              "max_width_ratio": (2.0, 1.5)}


def part_fits(recording, model: Path) -> list[dict]:
    """Every spark part's fits on ``recording`` (``model`` run with its tracker, the pair split
    replaced by the fits alone) with the features of :class:`PairRule` and the label of the
    annotation under the two peaks."""
    fits: list[dict] = []
    original = region_instances.RegionInstances.instances

    def instances(self, region):
        self._fitted_region = region
        return original(self, region)

    def split_pairs(self, smoothed, parts, partners):
        region = self._fitted_region
        values = smoothed.values[smoothed.inner]
        for part, box in enumerate(ndimage.find_objects(parts), start=1):
            if box is None:
                continue
            mask = parts[box] == part
            fit = fit_pair(values[box], mask, self.dt_ms, self.pixel_um)
            if fit is None:
                continue
            peaks = [(region.first + region.slices[0].start + box[0].start + _peak_time(s),
                      region.slices[2].start + box[2].start + s[1]) for s in fit.shapes]
            fits.append({**features(fit, int(mask.sum()), smoothed.noise_sd, self.dt_ms,
                                    self.pixel_um),
                         "peaks": peaks})
        return parts

    with (mock.patch.object(region_instances.RegionInstances, "instances", instances),
          mock.patch.object(region_instances.RegionInstances, "_split_pairs", split_pairs)):
        run_engine(recording, model, mode="accurate", detector="auto")
    annotated = recording.instance_mask.reshape(recording.instance_mask.shape[0], -1)
    ids = {int(ev["event_id"]) for ev in recording.events}
    for fit in fits:
        under = []
        for t, x in fit.pop("peaks"):
            ti, xi = int(round(t)), int(round(x))
            inside = 0 <= ti < annotated.shape[0] and 0 <= xi < annotated.shape[1]
            under.append(int(annotated[ti, xi]) if inside else -1)
        a, b = under
        fit["label"] = ("two" if a in ids and b in ids and a != b
                        else "same" if a in ids and a == b else "other")
    return fits


def splits(fits: list[dict], rule: PairRule | tuple[PairRule, ...]) -> Counter:
    """How many fits of each label ``rule`` (or any of several rules) would split."""
    rules = (rule,) if isinstance(rule, PairRule) else rule
    return Counter(f["label"] for f in fits if any(r.accepts(f) for r in rules))


def _ranked(candidates, fits: dict[str, list[dict]], first: PairRule | None = None):
    rows = []
    for rule in candidates:
        counts = {name: splits(f, rule if first is None else (first, rule))
                  for name, f in fits.items()}
        net = sum(c["two"] - c["same"] - c["other"] for name, c in counts.items()
                  if name.startswith("development"))
        rows.append((net, rule, counts))
    rows.sort(key=lambda r: (-r[0], sum(r[2]["development"].values()),
                             *(-v for v in vars(r[1]).values())))
    return rows


def rank(fits: dict[str, list[dict]]) -> list[tuple[int, PairRule, dict[str, Counter]]]:
    """Every rule of :data:`GRID` with its counts per generator, best development net first
    (ties: the stricter rule, fewer splits). The net sums *two* − *same* − *other* over the
    development sets (with ``--template-noise``, the same recordings with lumpy single sparks
    too)."""
    return _ranked((PairRule(**dict(zip(GRID, values, strict=True)))
                    for values in itertools.product(*GRID.values())), fits)


def rank_faint(fits: dict[str, list[dict]],
               first: PairRule) -> list[tuple[int, PairRule, dict[str, Counter]]]:
    """Every second rule of :data:`FAINT_GRID` (the gain and peak ratio of ``first``) with
    the counts of ``first`` or it splitting, best development net first, as :func:`rank`."""
    return _ranked((PairRule(first.min_gain_fraction, min_peak_ratio=first.min_peak_ratio,
                             **dict(zip(FAINT_GRID, values, strict=True)))
                    for values in itertools.product(*FAINT_GRID.values())), fits, first)


def shipped_rule() -> PairRule:
    """The first pair rule of the packaged accurate line-scan model's hybrid tracker."""
    rules = region_instances.pair_rules(
        PostprocessParams.load(MODELS["linescan"]).tracker_for("hybrid"))
    if not rules:
        raise SystemExit(f"{MODELS['linescan']}: the pair split is off")
    return rules[0]


def confirm(data: dict, overrides: dict | list[dict]) -> None:
    """One-to-one and IoMin spark F1, pairs matched once and characterization errors with the
    pair split off and with each of the tracker ``overrides`` (``pair_split_*``; one object or
    a list of them)."""
    off = {"pair_split_min_gain_fraction": None}
    rules = overrides if isinstance(overrides, list) else [overrides]
    with tempfile.TemporaryDirectory(prefix="castream-pairs-") as tmp:
        variants = (("pair split off", {"tracker": off}),
                    *((json.dumps(rule), {"tracker": rule}) for rule in rules))
        for index, (label, patch) in enumerate(variants):
            model = patched(MODELS["linescan"], patch, Path(tmp), f"variant-{index}")
            for name, recordings in data.items():
                result = evaluate(recordings, model, detector="auto", progress=False)
                iomin, once = result.scores["spark"], result.one_to_one["spark"]
                pairs = result.subtype_recall.get("pair", {})
                errors = " ".join(f"{k.split('_')[0]} {v['median_rel_error'] * 100:.1f} %"
                                  for k, v in result.characterization.items())
                log.info("%s, %s: spark F1 %.3f (P %.3f), one-to-one %.3f (R %.3f, P %.3f); "
                         "pairs matched once %s of %s; %s", label, name, iomin["f1"],
                         iomin["precision"], once["f1"], once["recall"], once["precision"],
                         pairs.get("found_once", "-"), pairs.get("total", "-"), errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_arguments(parser, 24, 8, "line-scans")
    parser.add_argument("--top", type=int, default=10, help="rules printed")
    parser.add_argument("--dump", default="", metavar="JSON", help="write the fits here")
    parser.add_argument("--load", default="", metavar="JSON",
                        help="rank the fits of an earlier --dump instead of fitting")
    add_template_noise_argument(parser)
    parser.add_argument("--faint", action="store_true",
                        help="rank a second rule for faint pairs on top of the model's own")
    parser.add_argument("--confirm", type=json.loads, default=None, metavar="JSON",
                        help="tracker overrides (an object, or a list of them) to score "
                             "against the split off instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    data = sets_from_arguments(args, "linescan")
    if args.confirm is not None:
        confirm(data, args.confirm)
        return 0
    if args.load:
        fits = json.loads(Path(args.load).read_text())
    else:
        fits = {name: [f for rec in recordings for f in part_fits(rec, MODELS["linescan"])]
                for name, recordings in data.items()}
    if args.dump:
        Path(args.dump).write_text(json.dumps(fits))
    for name, f in fits.items():
        log.info("%s: %d spark parts fitted, %s", name, len(f),
                 dict(Counter(x["label"] for x in f)))
    ranked = rank_faint(fits, shipped_rule()) if args.faint else rank(fits)
    for net, rule, counts in ranked[: args.top]:
        log.info("net %+d  %s  %s", net, rule,
                 "; ".join(f"{name}: " + ", ".join(f"{k} {c[k]}" for k in LABELS)
                           for name, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
