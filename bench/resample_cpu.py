"""CPU cost of resampling the network's probabilities back to a stream's own samples.

A stream whose calibration lies outside its model's trained range is seen by the network
resampled into that range (:mod:`engine.network_scale`); the probabilities (4 classes) then go
back to the stream's samples, which for a finer stream means growing every axis that was
shrunk. This times that step for skimage's ``resize`` (which the engine used for it) and for the
engine's ``_resize`` (sparse two-tap interpolation matrices where no axis shrinks; equal to
skimage bit for bit, checked here and in ``tests/test_network_scale.py``), in CPU ms, median of
``--repeats``.

Usage: ``taskset -c 1 python bench/resample_cpu.py [--repeats 9]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from skimage.transform import resize  # noqa: E402

from engine.network_scale import _resize  # noqa: E402

#: (what, probabilities as the network gives them, the stream's shape)
CASES = (
    ("line-scan window: 278 lines x 239 px back to 512 x 512", (4, 278, 239), (4, 512, 512)),
    ("line-scan frames: 384 lines' pixels 239 -> 512", (384, 4, 239), (384, 4, 512)),
    ("movie window: 64 frames of 40 x 320 px back to 64 x 512", (4, 64, 40, 320), (4, 64, 64, 512)),
)


def _skimage(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """What the engine called before: skimage's bilinear resize, no anti-aliasing (growing)."""
    return resize(array, shape, order=1, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


def _cpu_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times)) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'case':<58} {'skimage ms':>10} {'engine ms':>10} {'equal':>6}")
    for label, source, target in CASES:
        probs = rng.random(source).astype(np.float32)
        equal = bool(np.array_equal(_skimage(probs, target), _resize(probs, target)))
        slow = _cpu_ms(lambda p=probs, t=target: _skimage(p, t), args.repeats)
        fast = _cpu_ms(lambda p=probs, t=target: _resize(p, t), args.repeats)
        print(f"{label:<58} {slow:>10.1f} {fast:>10.1f} {'yes' if equal else 'NO':>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
