"""``castream train CONFIG [--data FOLDER] [--resume] [--out DIR] [--steps N] [--device D]``."""

from __future__ import annotations

import argparse
import logging

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
    parser.add_argument("--out", default=None, help="model directory to write (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="total training steps (overrides the config)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from offline.train import train

    out = train(args.config, out_dir=args.out, steps=args.steps, resume=args.resume, device=args.device,
                data=args.data, pixel_um=args.pixel_um, dt_ms=args.dt_ms)
    log.info("model directory: %s", out)
    return 0
