"""Ingest throughput: 64 KiB frames (64 x 512 uint16) over tcp loopback and ipc.

A publisher process streams N frames into an :class:`acquisition.ingest.Ingest` in this
process, which records them (to a temporary directory) and hands them to a consumer
thread. Reports frames/s and MB/s from the first to the last message received, and the ingest
process's CPU time per frame (receive + validate + record + queue + consumer) and the
publisher process's from start to confirmed stop (CPU per frame is less sensitive to a busy
machine than frames/s), then
verifies zero loss: frames received == recorded == sent, no gaps, and the recorded TIFF
holds exactly the frames that were sent. Target (DESIGN.md): >= 10,000 frames/s.

    python bench/ingest_throughput.py [--frames 20000] [--frames-per-message 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FRAME_SHAPE = (64, 512)  # uint16: 64 KiB per frame
POOL_FRAMES = 16  # distinct frames cycled by the publisher, so the recording can be checked
TARGET_FRAMES_PER_S = 10_000


def _frame_pool() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 65_535, (POOL_FRAMES, *FRAME_SHAPE),
                                             dtype=np.uint16)


def publish(endpoint: str, n_frames: int, frames_per_message: int, cpu_s) -> None:
    """Publisher process: stream ``n_frames`` frames cycled from the pool; its CPU seconds
    from start to confirmed stop go to ``cpu_s``."""
    from acquisition.publisher import Publisher

    pool = _frame_pool()
    cpu_started = time.process_time()
    with Publisher(endpoint, stream="bench") as publisher:
        publisher.start("frames", "uint16", FRAME_SHAPE, pixel_um=0.2, dt_ms=6.8)
        for sent in range(0, n_frames, frames_per_message):
            offset = sent % POOL_FRAMES
            publisher.send(pool[offset : offset + min(frames_per_message, n_frames - sent)])
    cpu_s.value = time.process_time() - cpu_started


def consume(ingest, done: threading.Event) -> None:
    """Consumer thread standing in for the engine: takes every item off the queue."""
    while not done.is_set():
        ingest.get(timeout_s=0.1)


def verify_recording(tif_path: Path, n_frames: int) -> bool:
    import tifffile

    recorded = tifffile.memmap(tif_path, mode="r")
    pool = _frame_pool()
    if recorded.shape != (n_frames, *FRAME_SHAPE):
        return False
    for first in range(0, n_frames, POOL_FRAMES):
        block = recorded[first : first + POOL_FRAMES]
        if not np.array_equal(block, pool[: len(block)]):
            return False
    return True


def run_once(endpoint: str, n_frames: int, frames_per_message: int, record: bool,
             record_parent: str | None) -> dict:
    from acquisition.ingest import Ingest

    with tempfile.TemporaryDirectory(prefix="castream-bench-", dir=record_parent) as record_dir:
        with Ingest(endpoint, record_dir=record_dir if record else None,
                    queue_size=4096) as ingest:
            done = threading.Event()
            consumer = threading.Thread(target=consume, args=(ingest, done), daemon=True)
            consumer.start()
            context = mp.get_context("spawn")
            publisher_cpu_s = context.Value("d", 0.0)
            process = context.Process(target=publish, args=(
                ingest.endpoint, n_frames, frames_per_message, publisher_cpu_s))
            process.start()
            ingest.wait_for(lambda s: "bench" in s, timeout_s=60)
            started, cpu_started = time.perf_counter(), time.process_time()
            ingest.wait_for(lambda s: s["bench"].state == "stopped", timeout_s=600)
            seconds = time.perf_counter() - started
            cpu_us_per_frame = (time.process_time() - cpu_started) / n_frames * 1e6
            process.join()
            converted = time.perf_counter()
            ingest.wait_until_stopped(["bench"], timeout_s=600)
            convert_s = time.perf_counter() - converted
            done.set()
            consumer.join()
            stats = ingest.stats()["bench"]
        ok = (stats.frames_received == n_frames and stats.missing_frames == 0
              and stats.errors == 0 and (not record or stats.frames_recorded == n_frames))
        if record:
            ok = ok and verify_recording(Path(record_dir) / "bench.tif", n_frames)
    frame_bytes = 2 * FRAME_SHAPE[0] * FRAME_SHAPE[1]
    return {"frames_per_s": n_frames / seconds, "mb_per_s": n_frames * frame_bytes / seconds / 1e6,
            "seconds": seconds, "convert_s": convert_s, "cpu_us": cpu_us_per_frame,
            "publisher_cpu_us": publisher_cpu_s.value / n_frames * 1e6, "ok": ok, "gaps": stats.missing_frames,
            "received": stats.frames_received}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--frames-per-message", type=int, default=1)
    parser.add_argument("--transports", default="tcp,ipc")
    parser.add_argument("--no-record", action="store_true", help="also measure without recording")
    parser.add_argument("--record-parent", default=None,
                        help="where the temporary recording directory goes (default: system "
                        "temp dir; /dev/shm separates ingest CPU cost from disk bandwidth)")
    args = parser.parse_args()
    if POOL_FRAMES % args.frames_per_message:
        parser.error(f"--frames-per-message must divide {POOL_FRAMES}")
    ipc_dir = tempfile.mkdtemp(prefix="cs-bench-")
    endpoints = {"tcp": "tcp://127.0.0.1:0", "ipc": f"ipc://{ipc_dir}/ingest.sock"}
    print(f"{args.frames} frames of {FRAME_SHAPE[0]}x{FRAME_SHAPE[1]} uint16 (64 KiB), "
          f"{args.frames_per_message} frame(s)/message, consumer draining the queue, "
          f"recording under {args.record_parent or tempfile.gettempdir()}")
    print(f"{'transport':9} {'record':6} {'frames/s':>9} {'MB/s':>7} {'ingest CPU':>10} "
          f"{'publisher CPU':>13} {'to TIFF s':>9}  check")
    all_ok = True
    for transport in args.transports.split(","):
        for record in ((True, False) if args.no_record else (True,)):
            result = run_once(endpoints[transport], args.frames, args.frames_per_message, record,
                              args.record_parent)
            verdict = "zero loss, recording verified" if result["ok"] else (
                f"FAILED: received {result['received']}, gaps {result['gaps']}")
            target = "" if result["frames_per_s"] >= TARGET_FRAMES_PER_S else "  (below target)"
            print(f"{transport:9} {'on' if record else 'off':6} {result['frames_per_s']:9.0f} "
                  f"{result['mb_per_s']:7.0f} {result['cpu_us']:7.0f} us "
                  f"{result['publisher_cpu_us']:10.0f} us {result['convert_s']:9.2f}"
                  f"  {verdict}{target}")
            all_ok = all_ok and result["ok"]
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
