"""How much of a stream's analysis outside the network is the per-pixel work that
``engine/dense_ops.py`` can run on the GPU, measured on this CPU.

Runs the whole per-stream engine over a simulated 64×512 movie (the default hybrid detector,
and the network detector alone) in 4-frame chunks under ``cProfile`` and splits the time of
:meth:`engine.analyzer.StreamAnalyzer.push` / ``finish`` into the network (the backend's
``predict``), the :class:`~engine.dense_ops.DenseOps` operations (what a CUDA stream runs on
its GPU) and the rest (which stays on the CPU). Profiling slows Python-heavy code more than
numpy-heavy code, so the shares are indicative; the GPU check (``bench/gpu_check.sh``)
measures the before and after on a GPU.

Usage: ``python bench/dense_share.py [--frames N] [--seed S]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from acquisition.simulate import MovieParams, simulate_movie
from engine.dense_ops import DenseOps
from engine.pipeline import DetectorFactory, EngineConfig, analyze_array


def _seconds(stats: pstats.Stats, match) -> float:
    """Cumulative seconds of the functions ``match(filename, name)`` selects (none nested in
    another selected one is counted twice: they do not call each other)."""
    return sum(row[3] for (filename, _, name), row in stats.stats.items()
               if match(filename, name))


def share(detector: str, frames: int, seed: int) -> dict:
    rec = simulate_movie(MovieParams(n_frames=frames), seed=seed)
    factory = DetectorFactory(EngineConfig(detector=detector))
    # load the model and build the backend outside the profile
    analyze_array(rec.data[:64], rec.stream_kind, rec.pixel_um, rec.dt_ms, factory=factory)
    profile = cProfile.Profile()
    profile.enable()
    result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms, chunk_frames=4,
                           factory=factory)
    profile.disable()
    stats = pstats.Stats(profile)
    dense_names = {name for name in vars(DenseOps) if not name.startswith("_")}
    total = _seconds(stats, lambda f, n: f.endswith("engine/analyzer.py")
                     and n in ("push", "finish"))
    network = _seconds(stats, lambda f, n: "engine/backends/" in f and n == "predict")
    dense = _seconds(stats, lambda f, n: f.endswith("engine/dense_ops.py") and n in dense_names)
    return {"detector": detector, "frames": frames, "events": len(result.events),
            "total_s": total, "network_s": network, "dense_s": dense}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    print("| detector | analysis s | network s | per-pixel ops s | rest s | per-pixel share "
          "of the non-network time |")
    print("|---|---:|---:|---:|---:|---:|")
    for detector in ("auto", "network"):
        r = share(detector, args.frames, args.seed)
        rest = r["total_s"] - r["network_s"] - r["dense_s"]
        outside = r["total_s"] - r["network_s"]
        print(f"| {detector} | {r['total_s']:.2f} | {r['network_s']:.2f} | {r['dense_s']:.2f} | "
              f"{rest:.2f} | {100 * r['dense_s'] / outside:.0f} % |")


if __name__ == "__main__":
    main()
