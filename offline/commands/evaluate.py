"""``castream evaluate MODEL DATA [--report DIR] [--detector classical]``.

``DATA`` is a folder of labelled recordings (Dotti convention or simulator-written), a
simulated test split: ``sim:linescan[:N]`` / ``sim:movie[:N]`` (held-out seeds, never used for
training), or the independent development generator (:mod:`offline.devsim`, reaction-diffusion
sparks, not the training simulator): ``dev:linescan[:N]`` / ``dev:movie[:N]``, and
``dev:linescan-empty:N`` / ``dev:movie-empty:N`` (no events: false events per second).
``--sim KEY=VALUE`` overrides the generator's parameters (shifted conditions, e.g.
``--sim pixel_um=0.2 --sim resting_photons=6`` for ``sim:``, ``--sim resting_snr=3`` for
``dev:``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from acquisition.stream_kind import StreamKind

HELP = "evaluate a model (or the classical detector) through the streaming engine; Dotti tables"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory, or 'default'")
    parser.add_argument("data", help="folder of labelled recordings, sim:linescan[:N] / sim:movie[:N], "
                        "or dev:linescan[:N] / dev:movie[:N] / dev:linescan-empty:N / dev:movie-empty:N")
    parser.add_argument("--report", default=None, help="write report.md, metrics.json and plots here")
    parser.add_argument("--detector", choices=("network", "classical", "hybrid", "auto"),
                        default="network",
                        help="network (default), classical, hybrid (both fused) or auto "
                             "(what analyze and serve run)")
    parser.add_argument("--mode", choices=("accurate", "low_latency"), default="accurate")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="generator parameter override for sim: and dev: data (repeatable)")
    parser.add_argument("--pixel-um", type=float, default=0.2,
                        help="pixel size of folder data (default Dotti et al.'s 0.2 µm)")
    parser.add_argument("--dt-ms", type=float, default=6.8,
                        help="frame/line interval of folder data (default Dotti et al.'s 6.8 ms)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the simulated test split")
    parser.add_argument("--record", default=None, metavar="NAME",
                        help="also store the metrics in MODEL/metrics.json under evaluation.NAME")
    parser.add_argument("--tune", type=int, default=0, metavar="N",
                        help="first tune MODEL/thresholds.json on N simulated validation recordings")
    parser.add_argument("--grid", type=float, nargs="+", default=[0.3, 0.5, 0.6, 0.7, 0.8, 0.9],
                        help="foreground thresholds tried by --tune")
    parser.add_argument("--tune-significance", type=int, default=0, metavar="N",
                        help="first tune min_significance on N simulated + N development "
                             "validation recordings and 2N empty ones (at most 0.5 false "
                             "events/s)")
    parser.add_argument("--tune-classes", nargs="+", default=["spark", "wave", "puff"],
                        help="classes whose mean F1 --tune maximizes (e.g. spark for line-scans)")


def parse_overrides(items: list[str]) -> dict:
    """``["pixel_um=0.2", "phenotype=cpvt"]`` → ``{"pixel_um": 0.2, "phenotype": "cpvt"}``."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            out[key] = value
    return out


def load_data(spec: str, overrides: dict, seed: int, pixel_um: float = 0.2, dt_ms: float = 6.8):
    """Recordings for ``spec`` (see the module docstring)."""
    from offline.datasets import SimulatedSource, load_recordings

    if spec.startswith("sim:"):
        parts = spec.split(":")
        n = int(parts[2]) if len(parts) > 2 else 20
        return SimulatedSource(kind=parts[1], split="test", seed=seed, params=overrides).lazy(n)
    if spec.startswith("dev:"):
        return load_dev(spec, overrides, seed)
    return load_recordings(spec, pixel_um=pixel_um, dt_ms=dt_ms)


def load_dev(spec: str, overrides: dict, seed: int):
    """``dev:KIND[:N]`` with KIND ``linescan``, ``movie``, ``linescan-empty``, ``movie-empty``."""
    from offline.devsim import DevSource

    parts = spec.split(":")
    kind = parts[1] if len(parts) > 1 else ""
    n = int(parts[2]) if len(parts) > 2 else 12
    params = dict(overrides)
    if kind.endswith("-empty"):
        kind, params["empty"] = kind[: -len("-empty")], True
    return DevSource(kind=kind, seed=seed, params=params).lazy(n)


def model_stream_kind(model: str) -> StreamKind:
    """Line-scan or movie, from the model directory's config."""
    from engine.models.model_dir import ModelDir

    return ModelDir.load(model, check_weights=False).config.stream_kind


def tune(model: str, args: argparse.Namespace, kind: StreamKind) -> None:
    """Tune the foreground threshold on the validation split (never the test split), simulated
    with the same ``--sim`` overrides as the test data."""
    from offline.datasets import SimulatedSource
    from offline.thresholds import tune_thresholds, write_thresholds

    val = SimulatedSource(kind=kind.model_kind, split="val", seed=args.seed,
                          params=parse_overrides(args.sim)).take(args.tune)
    search = tune_thresholds(val, model, mode=args.mode, grid={"foreground": args.grid},
                             backend=args.backend, classes=args.tune_classes)
    log.info("best thresholds %s (mean F1 %.3f on %d validation recordings)", search["best"],
             search["best_mean_f1"], args.tune)
    write_thresholds(model, search)


def tune_significance(model: str, args: argparse.Namespace, kind: StreamKind) -> None:
    """Tune ``min_significance`` on validation recordings of both generators (simulator
    validation split with the ``--sim`` overrides, development set from its validation seeds)
    and on empty recordings of both (:func:`offline.thresholds.validation_data`); never on the
    test data."""
    from offline.thresholds import tune_min_significance, validation_data, write_thresholds

    n = args.tune_significance
    sets, empty = validation_data(kind, n, n, seed=args.seed,
                                  sim_params=parse_overrides(args.sim))
    recordings = sets["sim"] + sets["dev"]
    search = tune_min_significance(recordings, model, mode=args.mode, backend=args.backend,
                                   classes=args.tune_classes, empty=empty)
    log.info("best %s (mean F1 %.3f on %d recordings)", search["best"], search["best_mean_f1"],
             len(recordings))
    write_thresholds(model, search, search_file="significance_search.json")


def run(args: argparse.Namespace) -> int:
    from offline.evaluate import evaluate, format_tables, write_report

    recordings = load_data(args.data, parse_overrides(args.sim), args.seed, args.pixel_um, args.dt_ms)
    model = None if args.model == "default" else args.model
    if args.tune and model is not None:
        tune(model, args, kind=model_stream_kind(model))
    if args.tune_significance and model is not None:
        tune_significance(model, args, kind=model_stream_kind(model))
    result = evaluate(recordings, model, mode=args.mode, detector=args.detector, backend=args.backend)
    name = f"{args.detector} {args.mode} on {args.data}"
    sys.stdout.write(format_tables(result, name))
    if args.report:
        write_report({name: result}, args.report, f"castream evaluation: {args.model}")
    if args.record and model is not None:
        record(model, args.record, {"data": args.data, "sim": args.sim, "detector": args.detector,
                                    "mode": args.mode, "seed": args.seed, **result.to_dict()})
    return 0


def record(model: str, name: str, entry: dict) -> None:
    """Merge ``entry`` into ``MODEL/metrics.json`` under ``evaluation.<name>``."""
    import json
    from pathlib import Path

    path = Path(model) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.setdefault("evaluation", {})[name] = entry
    path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
