"""``castream export MODEL``: ONNX export with a dynamic batch axis, checked with onnxruntime
(an event model's ``model.onnx``, or a cells model's ``curator.onnx``, ``structure.onnx`` and
``pattern.onnx``, and ``stack_head.onnx`` for a directory holding a 3-D head)."""

from __future__ import annotations

import argparse
import json
import logging

HELP = "export a model directory's network to ONNX (checked against torch with onnxruntime)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory (weights.safetensors + config.json)")
    parser.add_argument("--out", default=None, help="ONNX path (default: MODEL/model.onnx; a "
                                                    "cells model's graphs go into MODEL)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.cells.stack_head import StackHead
    from offline.export import export_cells, export_onnx, export_stack_head

    config = Path(args.model) / "config.json"
    cells = config.is_file() and json.loads(config.read_text()).get("kind") == "cells"
    head_only = not config.is_file() and StackHead.present(args.model)  # train_stack --out
    if (cells or head_only) and args.out:
        log.error("a cells model's graphs are written into its directory: drop --out")
        return 2
    report = export_cells(args.model) if cells else export_stack_head(args.model) \
        if head_only else export_onnx(args.model, args.out)
    log.info("ONNX export: %s", json.dumps(report))
    return 0 if report["passed"] else 1
