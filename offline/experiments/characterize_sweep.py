"""Characterization parameters swept on validation recordings, detection run once.

``python -m offline.experiments.characterize_sweep --kind linescan --n-dev 12 --n-sim 6
--set matched_fraction=0.3,0.6,0.9`` runs the default detector once per validation recording
(development seeds ``DEV_VAL_SEED``+, the simulator's validation split;
:func:`offline.experiments.validation.validation_sets`; no test seed is read), keeps every
instance the engine characterized, then characterizes them again with each value of each
``--set NAME=V1,V2,...`` (a field of :class:`engine.characterize.CharacterizeConfig`, the
others as shipped in the model's ``postprocess.json``) and of each ``--timecourse
NAME=V1,...`` (a module constant of :mod:`engine.timecourse` or :mod:`engine.peak_top`, e.g.
``MODEL_AVERAGING=0``) and
prints the median relative error and bias of the five parameters of matched sparks against the
generators' noise-free truth, and the share of values off by more than 100 %.
Detection, matching and the resolution rules (:mod:`engine.honesty`) are those of
``castream evaluate``; only the characterization differs between rows.

``--base NAME=V`` sets a field (or, in upper case, a constant of :mod:`engine.timecourse` or
:mod:`engine.peak_top`) in every row (\"shipped\" included), so that a variant can be swept on
top of a setting the model does not ship (``--base peak_bag_replicates=8 --timecourse
BAG_BASE=1,2``).

``--noise-free`` instead characterizes each matched spark of ``--n-dev`` development
validation recordings twice, on the engine's ΔF/F0 and on the generator's noise-free ΔF/F0 in
the same crop (the same instance, mask and parameters), and prints both errors: what the
method loses to noise, and what it gets wrong even without any.
"""

from __future__ import annotations

import argparse
import copy as _copy
import dataclasses
import logging
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from unittest import mock

import numpy as np

from acquisition.stream_kind import StreamKind
from engine import analyzer as analyzer_module
from engine import honesty, peak_top, timecourse
from engine.characterize import CharacterizeConfig, characterize
from engine.events import Event
from engine.models.model_dir import default_model_path
from engine.models.postprocess_file import PostprocessParams
from offline import characterization_metrics
from offline.devsim.generate import dev_params, generate
from offline.evaluate import run_engine, score_recording
from offline.experiments.validation import validation_sets
from offline.thresholds import DEV_VAL_SEED

log = logging.getLogger(__name__)


def _value(text: str):
    if text.lower() == "none":
        return None
    return float(text)


#: the modules whose constants ``--timecourse`` may set
TIME_COURSE_MODULES = {"timecourse": timecourse, "peak_top": peak_top}


def parse_sets(items: list[str], timecourse_items: list[str] = ()) -> list[tuple[str, object]]:
    """``["a=1,2", "b=3"]`` → ``[("a", 1.0), ("a", 2.0), ("b", 3.0)]``; names checked;
    ``timecourse_items`` become ``("MODULE.NAME", value)``, MODULE the one of
    :data:`TIME_COURSE_MODULES` that holds the constant."""
    fields = {f.name for f in dataclasses.fields(CharacterizeConfig)}
    out = []
    for item in items:
        name, _, values = item.partition("=")
        if name not in fields:
            raise SystemExit(f"error: {name!r} is not a CharacterizeConfig field")
        out.extend((name, _value(v)) for v in values.split(","))
    for item in timecourse_items:
        name, _, values = item.partition("=")
        module = next((key for key, mod in TIME_COURSE_MODULES.items()
                       if name.isupper() and hasattr(mod, name)), None)
        if module is None:
            raise SystemExit(f"error: {name!r} is not a constant of engine.timecourse or "
                             "engine.peak_top")
        out.extend((f"{module}.{name}", _value(v)) for v in values.split(","))
    return out


def record_instances(recording, model, params: PostprocessParams, mode: str = "accurate"):
    """Run the engine once (``mode``); return its result and ``[(instance, pixel_um, dt_ms)]``
    of every characterized event."""
    seen = []

    def recorder(instance, pixel_um, dt_ms, config):
        seen.append((instance, pixel_um, dt_ms))
        return characterize(instance, pixel_um, dt_ms, config)

    with mock.patch.object(analyzer_module, "characterize", recorder):
        result = run_engine(recording, model, mode=mode, detector="auto", postprocess=params)
    return result, seen


def events_with(seen, config: CharacterizeConfig, kinds: dict[int, str]) -> list[Event]:
    """The recorded instances characterized with ``config`` (kind as the engine reported)."""
    events = []
    for instance, pixel_um, dt_ms in seen:
        if instance.event_id not in kinds:
            continue
        fields = characterize(instance, pixel_um, dt_ms, config)
        honesty.apply(fields, instance, pixel_um, dt_ms)
        fields["kind"] = kinds[instance.event_id]
        events.append(Event(event_id=instance.event_id, **fields))
    return events


def sweep(recordings, model, params: PostprocessParams, variants: list[tuple[str, object]],
          progress: Callable[[str], None] = log.info, mode: str = "accurate") -> dict[str, dict]:
    """Characterization errors of matched sparks for the shipped config and each variant."""
    configs = {"shipped": (params.characterize, None)}
    for name, value in variants:
        module, _, constant = name.partition(".")
        if constant:
            configs[f"{name}={value}"] = (params.characterize, (module, {constant: value}))
        else:
            configs[f"{name}={value}"] = (
                dataclasses.replace(params.characterize, **{name: value}), None)
    pairs: dict[str, list] = {label: [] for label in configs}
    for recording in recordings:
        result, seen = record_instances(recording, model, params, mode)
        kinds = {ev.event_id: ev.kind for ev in result.events}
        for label, (config, constants) in configs.items():
            with (mock.patch.multiple(TIME_COURSE_MODULES[constants[0]], **constants[1])
                  if constants else nullcontext()):
                events = events_with(seen, config, kinds)
            scored = score_recording(recording, events, result.labels)
            pairs[label].extend(scored["spark_pairs"])
        progress(f"{recording.name}: {len(result.events)} events")
    return {label: _errors(p) for label, p in pairs.items()}


def _errors(pairs: list) -> dict[str, dict]:
    """:func:`offline.characterization_metrics.characterization_errors` plus ``gross``: the share of values off
    by more than 100 %."""
    errors = characterization_metrics.characterization_errors(pairs)
    for name, row in errors.items():
        signed = np.abs(characterization_metrics.relative_errors(pairs, name))
        row["gross"] = float(np.mean(signed > 1.0)) if signed.size else float("nan")
    return errors


def noise_free_errors(kind: str, n: int, params: PostprocessParams, model) -> dict[str, dict]:
    """Errors of matched sparks characterized on the recorded and on the noise-free ΔF/F0
    (development validation recordings ``DEV_VAL_SEED`` … + ``n``)."""
    pairs: dict[str, list] = {"recorded": [], "noise-free": []}
    for i in range(n):
        seed = DEV_VAL_SEED + i
        dev = generate(dev_params(kind), seed, name=f"dev-{kind}-{seed}")
        result, seen = record_instances(dev.recording, model, params)
        kinds = {ev.event_id: ev.kind for ev in result.events}
        clean = dev.truth.clean_dff0
        clean = clean if clean.ndim == 3 else clean[:, None, :]
        noise_free = []
        for instance, pixel_um, dt_ms in seen:
            copy = _copy.copy(instance)
            crop = tuple(slice(o, o + s) for o, s in zip(instance.dff0_origin,
                                                          instance.dff0.shape, strict=True))
            copy.dff0 = clean[crop].astype(np.float32)
            noise_free.append((copy, pixel_um, dt_ms))
        for label, items in (("recorded", seen), ("noise-free", noise_free)):
            events = events_with(items, params.characterize, kinds)
            pairs[label].extend(score_recording(dev.recording, events,
                                                result.labels)["spark_pairs"])
        log.info("%s: %d events", dev.recording.name, len(result.events))
    return {label: _errors(p) for label, p in pairs.items()}


def with_base(params: PostprocessParams, items: list[str]) -> PostprocessParams:
    """``params`` with each ``NAME=V`` of ``items`` set in its characterization config (the
    rows' common base: ``--base``)."""
    changes = dict(parse_sets(items))
    if not changes:
        return params
    return dataclasses.replace(params, characterize=dataclasses.replace(params.characterize,
                                                                        **changes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("movie", "linescan"), default="linescan")
    parser.add_argument("--n-dev", type=int, default=12)
    parser.add_argument("--n-sim", type=int, default=6)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2")
    parser.add_argument("--timecourse", action="append", default=[], metavar="NAME=V1,V2")
    parser.add_argument("--base", action="append", default=[], metavar="NAME=V",
                        help="a CharacterizeConfig field or a time-course constant (upper case) "
                             "set in every row, \"shipped\" included")
    parser.add_argument("--mode", choices=("accurate", "low_latency"), default="accurate",
                        help="which of the kind's default models (and its windows)")
    parser.add_argument("--offset", type=int, default=0,
                        help="first development validation seed offset (fresh recordings)")
    parser.add_argument("--noise-free", action="store_true",
                        help="recorded against noise-free ΔF/F0 (development recordings)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    variants = parse_sets(args.set, args.timecourse)
    model = default_model_path(StreamKind.from_model_kind(args.kind), args.mode)
    fields = [item for item in args.base if not item.partition("=")[0].isupper()]
    constants = [item for item in args.base if item.partition("=")[0].isupper()]
    params = with_base(PostprocessParams.load(model), fields)
    with ExitStack() as stack:
        for name, value in parse_sets([], constants):
            module, _, constant = name.partition(".")
            stack.enter_context(mock.patch.object(TIME_COURSE_MODULES[module], constant, value))
        if args.noise_free:
            _log_table(f"{args.kind} development",
                       noise_free_errors(args.kind, args.n_dev, params, model))
            return
        for name, recs in validation_sets(args.kind, args.n_dev, args.n_sim,
                                          args.offset).items():
            _log_table(f"{args.kind} {name}", sweep(list(recs), model, params, variants,
                                                     mode=args.mode))


def _log_table(title: str, table: dict[str, dict]) -> None:
    for label, errors in table.items():
        cells = "  ".join(f"{key.split('_')[0]} {v['median_rel_error'] * 100:.1f} % "
                          f"({v['median_bias'] * 100:+.1f} %, >100 % {v['gross'] * 100:.0f} %)"
                          for key, v in errors.items())
        n = max(v["n"] for v in errors.values())
        log.info("%s, %-28s n %3d: %s", title, label, n, cells)


if __name__ == "__main__":
    main()
