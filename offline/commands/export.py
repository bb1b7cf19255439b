"""``castream export MODEL``: ONNX export with a dynamic batch axis, checked with onnxruntime."""

from __future__ import annotations

import argparse
import json
import logging

HELP = "export a model directory's network to ONNX (checked against torch with onnxruntime)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory (weights.safetensors + config.json)")
    parser.add_argument("--out", default=None, help="ONNX path (default: MODEL/model.onnx)")


def run(args: argparse.Namespace) -> int:
    from offline.export import export_onnx

    report = export_onnx(args.model, args.out)
    log.info("ONNX export: %s", json.dumps(report))
    return 0 if report["passed"] else 1
