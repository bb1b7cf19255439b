"""``castream train CONFIG [--data FOLDER] [--resume] [--out DIR] [--steps N] [--device D]``."""

from __future__ import annotations

import argparse
import logging

from offline.model_out import add_out_arguments

HELP = "train a segmentation model on simulated or your own labelled recordings (offline/configs/*.json)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config JSON (e.g. offline/configs/linescan_accurate.json)")
    parser.add_argument("--data", default=None, metavar="FOLDER",
                        help="train on this folder of labelled recordings (Dotti et al.'s NN_video.tif, "
                             "NN_class_label.tif, NN_event_label.tif) instead of the simulator; "
                             "split train/val by recording")
    parser.add_argument("--pixel-um", type=float, default=None,
                        help="pixel size of --data (default: the config's data / model calibration)")
    parser.add_argument("--dt-ms", type=float, default=None,
                        help="line/frame interval of --data (default: the config's data / model calibration)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    add_out_arguments(parser, "model directory")
    parser.add_argument("--steps", type=int, default=None, help="total training steps (overrides the config)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from offline.model_out import training_out_dir
    from offline.train import TrainConfig, train

    if args.resume and args.out is None:
        raise ValueError("--resume continues a run: name its model directory with --out DIR")
    out_dir = training_out_dir(args.out, TrainConfig.load(args.config).name, args.force,
                               existing_ok=args.resume)
    out = train(args.config, out_dir=out_dir, steps=args.steps, resume=args.resume, device=args.device,
                data=args.data, pixel_um=args.pixel_um, dt_ms=args.dt_ms)
    log.info("model directory: %s", out)
    return 0
