"""End-to-end CPU throughput of the streaming engine, and its latency figures.

For a simulated 512-px line-scan and a 64×512 movie, in the accurate and low-latency modes,
runs the whole per-stream engine (ΔF/F0 preprocessing → windows → network → stitch → instance
tracking → characterization → cell vote) over the recording in acquisition-sized chunks, as
``serve`` does, and prints the CPU model and, per stream type and detector: frames (lines) per
second, the multiple of real time, CPU-seconds per recording-second (CPU time of all this
process's threads over the recording's duration), the ratio of the frames/s to Dotti et al.'s
movie network measured in the same run (onnxruntime, same threads: a yardstick that makes
figures from different CPUs comparable; movies only), the built-in look-ahead and the compute
delay p50/p99 (time from a chunk's arrival to its frames being final and post-processed).
Targets (DESIGN.md): line-scan ≥ 2× real time at 1.5 ms/line (≥ 1333 lines/s), movie ≥ 25
frames/s; the server issue's: line-scan ≤ 0.15 CPU-s per recording-s, movie ≥ 45× Dotti's
network. The classical detector and the default detector (``auto``: the hybrid of network and
classical detector) are measured too.

Usage: ``python bench/engine_cpu.py [--seconds S] [--threads N] [--linescan-model DIR]``
(``--linescan-model``: a line-scan model directory to measure instead of the packaged accurate
one, in the line-scan network-accurate and default rows; a candidate before it is adopted)
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import cpu_model  # bench/machine.py (the script's folder is on the path)
from network_cpu import dotti_frames_per_s

from acquisition.simulate import LinescanParams, MovieParams, simulate_linescan, simulate_movie
from acquisition.stream_kind import StreamKind
from engine.models.json_files import ModelDirError
from engine.models.model_dir import ModelDir, default_model_path
from engine.pipeline import analyze_array

TARGET_FPS = {StreamKind.LINESCAN: 2 * 1000 / 1.5, StreamKind.MOVIE: 25.0}
# what a microscope sends per message (≈ 100 ms of line-scan)
CHUNK = {StreamKind.LINESCAN: 64, StreamKind.MOVIE: 4}


def _row(label: str, rec, dotti_fps: float, **kwargs) -> str:
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = analyze_array(rec.data, rec.stream_kind, rec.pixel_um, rec.dt_ms,
                           chunk_frames=CHUNK[rec.stream_kind], **kwargs)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = rec.data.shape[0]
    fps = n / elapsed
    realtime = fps * rec.dt_ms / 1000
    cpu_per_s = cpu / (n * rec.dt_ms / 1000)
    ratio = "-" if rec.stream_kind.is_linescan else f"{fps / dotti_fps:.1f}x"
    ok = "yes" if fps >= TARGET_FPS[rec.stream_kind] else "NO"
    return (f"{label:<34} {fps:>10.0f} {realtime:>8.2f}x {ok:>7} {cpu_per_s:>8.2f} {ratio:>8} "
            f"{result.lookahead_ms:>9.0f} {result.delay_ms_p50:>8.1f} {result.delay_ms_p99:>8.1f} "
            f"{len(result.events):>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="line-scan length")
    parser.add_argument("--movie-frames", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="torch/onnxruntime threads")
    parser.add_argument("--linescan-model", default=None, metavar="DIR",
                        help="line-scan model directory (accurate mode) instead of the packaged "
                             "one")
    args = parser.parse_args()
    if args.linescan_model is not None:
        try:
            if not StreamKind.from_axes(ModelDir.load(args.linescan_model).config.axes).is_linescan:
                parser.error(f"{args.linescan_model} is not a line-scan model")
        except ModelDirError as error:
            parser.error(str(error))
    torch.set_num_threads(args.threads)

    line = simulate_linescan(LinescanParams(duration_s=args.seconds), seed=101)
    movie = simulate_movie(MovieParams(n_frames=args.movie_frames), seed=102)
    dotti_fps = dotti_frames_per_s(args.threads)
    print(f"CPU: {cpu_model()}; line-scan {line.data.shape} at {line.dt_ms} ms/line; "
          f"movie {movie.data.shape} at {movie.dt_ms} ms/frame; torch/onnxruntime threads "
          f"{args.threads}; Dotti et al.'s network (onnxruntime) {dotti_fps:.1f} frames/s")
    print(f"{'stream / detector / mode':<34} {'frames/s':>10} {'realtime':>9} {'target':>7} "
          f"{'CPU-s/s':>8} {'/Dotti':>8} {'look-ahd':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'events':>7}")
    for rec in (line, movie):
        kind = rec.stream_kind.value
        chosen = args.linescan_model if rec.stream_kind.is_linescan else None
        for mode in ("accurate", "low_latency"):
            try:
                default_model_path(rec.stream_kind, mode)
            except FileNotFoundError:
                print(f"{kind + ' network ' + mode:<34} (no packaged model: train it first)")
                continue
            print(_row(f"{kind} network {mode}", rec, dotti_fps, mode=mode, detector="network",
                       model_dir=chosen if mode == "accurate" else None))
        # the default: for the movie model, the hybrid (network + classical, hybrid.json)
        print(_row(f"{kind} default (auto)", rec, dotti_fps, detector="auto", model_dir=chosen))
        print(_row(f"{kind} classical", rec, dotti_fps, detector="classical"))


if __name__ == "__main__":
    main()
