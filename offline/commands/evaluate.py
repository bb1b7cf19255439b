"""``castream evaluate MODEL DATA [--report DIR] [--detector classical]``.

``DATA`` is a folder of labelled recordings (Dotti convention or simulator-written), a
simulated test split: ``sim:linescan[:N]`` / ``sim:movie[:N]`` (held-out seeds, never used for
training), or the independent development generator (:mod:`offline.devsim`, reaction-diffusion
sparks, not the training simulator): ``dev:linescan[:N]`` / ``dev:movie[:N]``, and
``dev:linescan-empty:N`` / ``dev:movie-empty:N`` (no events: false events per second).
``--sim KEY=VALUE`` overrides the generator's parameters (shifted conditions, e.g.
``--sim pixel_um=0.2 --sim resting_photons=6`` for ``sim:``, ``--sim resting_snr=3`` for
``dev:``).

A cells model directory (structure images, ``config.json`` kind "cells") is evaluated on
held-out simulated fields instead: ``cells:test[:N]`` (the training generator, held-out
seeds), ``cells:variant[:N]`` (:meth:`RenderStyle.variant`, never trained on) or
``cells:select[:N]`` (the selection split, randomized rendering), 60 fields by default, the
same tables as ``castream train-cells --evaluate-only`` (docs/CELLS.md); ``--baselines``
fits the baselines on the model's training fields first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
import tempfile
from pathlib import Path

from acquisition.stream_kind import StreamKind

HELP = "evaluate a model (or the classical detector) through the streaming engine; Dotti tables"

log = logging.getLogger(__name__)

CELLS_SPLITS = ("test", "variant", "select")
CELLS_FIELDS = 60  # fields per split of the packaged model's report (docs/CELLS.md)
CELLS_DATA = "cells:test[:N], cells:variant[:N] or cells:select[:N]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory, or 'default'")
    parser.add_argument("data", help="folder of labelled recordings, sim:linescan[:N] / sim:movie[:N], "
                        "or dev:linescan[:N] / dev:movie[:N] / dev:linescan-empty:N / "
                        "dev:movie-empty:N; for a cells model cells:test[:N] / cells:variant[:N] / "
                        f"cells:select[:N] (default {CELLS_FIELDS} fields)")
    parser.add_argument("--report", default=None, help="write report.md, metrics.json and plots here")
    parser.add_argument("--detector", choices=("network", "classical", "hybrid", "auto"),
                        default="network",
                        help="network (default), classical, hybrid (both fused) or auto "
                             "(what analyze and serve run)")
    parser.add_argument("--mode", choices=("accurate", "low_latency"), default="accurate")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--blank", choices=("known", "estimated"), default="known",
                        help="each recording's offset: its true one (known), or estimated from "
                             "the data as `castream analyze` does without --blank (estimated)")
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
    cells = parser.add_argument_group("cells models (cells:SPLIT[:N] data)")
    cells.add_argument("--baselines", action="store_true",
                       help="also fit the baselines (mask-statistics logistic, ridge, "
                            "logistic heads) on the model's training and validation fields "
                            "(metrics.json splits, else 720 and 60; minutes: see docs/CELLS.md)")
    cells.add_argument("--baseline-fields", type=int, nargs=2, metavar=("TRAIN", "VAL"),
                       help="training and validation fields the baselines are fitted on")
    cells.add_argument("--workers", type=int, default=1, help="processes simulating fields")
    cells.add_argument("--cache", type=Path, default=None,
                       help="keep the fields' candidates here (.npz per split, the same files "
                            "as train-cells --cache); default: nothing kept")


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


def is_cells_model(model: str) -> bool:
    """Whether ``model`` is a cells model directory (``config.json`` of kind "cells")."""
    config = Path(model) / "config.json"
    if model == "default" or not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("kind") == "cells"
    except (OSError, ValueError, AttributeError):
        return False


def parse_cells_spec(spec: str) -> tuple[str, int]:
    """``cells:SPLIT[:N]`` → (SPLIT, N)."""
    parts = spec.split(":")
    split = parts[1] if len(parts) > 1 else ""
    if split not in CELLS_SPLITS or len(parts) > 3:
        raise ValueError(f"unknown cells data {spec!r}: use {CELLS_DATA}")
    try:
        n = int(parts[2]) if len(parts) > 2 else CELLS_FIELDS
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"cells data {spec!r}: N must be a positive number of fields")
    return split, n


def check_model_fits_data(model: str, data: str) -> bool:
    """True for a cells model on ``cells:`` data, False for a Ca²⁺ model on other data;
    a one-line error (ValueError) for any other pairing."""
    cells_data = data.startswith("cells:")
    if is_cells_model(model):
        if not cells_data:
            raise ValueError(f"{model} is a cells model (structure images); evaluate it on "
                             f"{CELLS_DATA}")
        return True
    if cells_data and model != "default":
        if not Path(model).is_dir():
            raise ValueError(f"model directory {model} does not exist")
        raise ValueError(f"{model} is a Ca²⁺ model (line-scans / movies); evaluate it on "
                         "sim:/dev: data or a folder of recordings; cells:... needs a cells "
                         "model directory such as engine/models/default/cells")
    return cells_data


def run_cells(args: argparse.Namespace) -> int:
    """``castream evaluate CELLS_MODEL cells:SPLIT[:N]``: the tables of
    ``castream train-cells --evaluate-only`` for that split, on its held-out fields."""
    from engine.cells.model import DEFAULT_CELLS_MODEL, CellsModel
    from offline.commands.train_cells import (
        DATA_DESCRIPTION,
        evaluate_splits,
        split_candidates,
        write_report,
    )

    ca_only = [flag for flag, used in (
        ("--tune", args.tune), ("--tune-significance", args.tune_significance),
        ("--sim", args.sim), ("--record", args.record), ("--seed", args.seed),
        ("--detector", args.detector != "network")) if used]
    if ca_only:
        verb = "applies" if len(ca_only) == 1 else "apply"
        raise ValueError(f"{', '.join(ca_only)} {verb} only to Ca²⁺ data; {args.data} uses the "
                         "fixed held-out seeds of its split (docs/CELLS.md)")
    split, n = parse_cells_spec(args.data)
    path = Path(DEFAULT_CELLS_MODEL if args.model == "default" else args.model)
    model = CellsModel.load(path)
    splits = {split: n}
    baselines = bool(args.baselines or args.baseline_fields)
    if baselines:
        trained = model.metrics.get("splits", {})
        n_train, n_val = args.baseline_fields or (trained.get("train", 720),
                                                   trained.get("val", 60))
        splits = {"train": n_train, "val": n_val, **splits}
    rendering = model.metrics.get("training_rendering", "default")
    data = split_candidates(splits, path, args.cache, args.workers, rendering)
    report = Path(args.report) if args.report else None
    with _report_dir(report) as folder:
        results = evaluate_splits(model, data, splits, [split], folder, baselines, args.cache,
                                  rendering)
        command = "castream " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
            if "evaluate" in sys.argv else f"castream evaluate {args.model} {args.data}"
        note = "" if baselines else (
            "Baselines not fitted (`--baselines` fits them on the model's training fields).")
        pattern_result = model.metrics.get("pattern_net", {})
        text = write_report(folder, command, pattern_result, results, note)
        if report is not None:
            metrics = {"command": command, "model": str(path), "splits": splits,
                       "data": DATA_DESCRIPTION, "training_rendering": rendering,
                       "baselines": baselines, "pattern_net": pattern_result,
                       "results": results}
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    sys.stdout.write(f"cells model {path} on {args.data}\n\n{text}")
    return 0


@contextlib.contextmanager
def _report_dir(report: Path | None):
    """``report`` (created), or a temporary folder for the figures when None."""
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        yield report
        return
    with tempfile.TemporaryDirectory(prefix="castream-cells-report-") as folder:
        yield Path(folder)


def run(args: argparse.Namespace) -> int:
    from offline.evaluate import evaluate
    from offline.evaluate_report import format_tables, write_report

    if check_model_fits_data(args.model, args.data):
        return run_cells(args)
    recordings = load_data(args.data, parse_overrides(args.sim), args.seed, args.pixel_um, args.dt_ms)
    model = None if args.model == "default" else args.model
    if args.tune and model is not None:
        tune(model, args, kind=model_stream_kind(model))
    if args.tune_significance and model is not None:
        tune_significance(model, args, kind=model_stream_kind(model))
    result = evaluate(recordings, model, mode=args.mode, detector=args.detector, backend=args.backend,
                      blank=args.blank)
    name = f"{args.detector} {args.mode} on {args.data}" + (
        ", blank estimated" if args.blank == "estimated" else "")
    sys.stdout.write(format_tables(result, name))
    if args.report:
        write_report({name: result}, args.report, f"castream evaluation: {args.model}")
    if args.record and model is not None:
        record(model, args.record, {"data": args.data, "sim": args.sim, "detector": args.detector,
                                    "mode": args.mode, "seed": args.seed,
                                    "blank": args.blank, **result.to_dict()})
    return 0


def record(model: str, name: str, entry: dict) -> None:
    """Merge ``entry`` into ``MODEL/metrics.json`` under ``evaluation.<name>``."""
    import json
    from pathlib import Path

    path = Path(model) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.setdefault("evaluation", {})[name] = entry
    path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
