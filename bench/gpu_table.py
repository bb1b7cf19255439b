"""The GPU check's final table, from the JSON lines of ``bench/gpu_network.py`` and
``bench/gpu_streams.py`` in a results folder (``bench/gpu_check.sh`` writes them).

Network: per model and backend, the best frames/s over the batch sizes (and at which batch),
and for the movie network the ratio to Dotti et al.'s network (same frames, same precision,
same run). End to end:
per stream count, frames/s, kept up, compute delay p50/p99 (medians of the repeats), GPU
memory and CPU cores; then the most streams held at 147 frames/s with p99 ≤ 50 ms.

Usage: ``python bench/gpu_table.py RESULTS_DIR`` (prints Markdown; also writes
``RESULTS_DIR/table.md``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET_NETWORK_FPS, TARGET_P99_MS = 15_000, 50.0


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def network_table(rows: list[dict]) -> list[str]:
    ok = [r for r in rows if "fps" in r]
    best: dict[tuple[str, str], dict] = {}
    for r in ok:
        key = (r["model"], r["backend"])
        if key not in best or r["fps"] > best[key]["fps"]:
            best[key] = r
    lines = ["| network | backend | best frames/s | at batch | ms/call | / Dotti same precision "
             "| device only: best frames/s (batch) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (model, backend), r in sorted(best.items()):
        dotti = next((d for (m, b), d in best.items()
                      if m == "dotti" and d["precision"] == r["precision"]
                      and b == backend), None)
        ratio = f"{r['fps'] / dotti['fps']:.1f}x" if dotti and model == "movie" else ""
        device = [d for d in ok if (d["model"], d["backend"]) == (model, backend)
                  and "device_fps" in d]
        top = max(device, key=lambda d: d["device_fps"]) if device else None
        device_cell = f"{top['device_fps']:.0f} ({top['batch']})" if top else ""
        lines.append(f"| {model} | {backend} | {r['fps']:.0f} | {r['batch']} | "
                     f"{1e3 * r['s_per_call']:.2f} | {ratio} | {device_cell} |")
    failed = [r for r in rows if "error" in r]
    if failed:
        lines.append(f"\n{len(failed)} network measurement(s) failed, e.g. {failed[0]['model']} "
                     f"{failed[0]['backend']} batch {failed[0]['batch']}: {failed[0]['error']}")
    movie = [r["fps"] for (m, _), r in best.items() if m == "movie"]
    if movie:
        verdict = "meets" if max(movie) >= TARGET_NETWORK_FPS else "is below"
        lines.append(f"\nmovie network: {max(movie):.0f} frames/s at best, {verdict} the "
                     f"{TARGET_NETWORK_FPS} frames/s target")
    return lines


def e2e_table(rows: list[dict]) -> list[str]:
    lines = ["| backend | detector | workers | streams | frames/s | kept up | p50 ms | p99 ms | "
             "GPU alloc GiB | CPU cores | repeats |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        gpu = f"{r['gpu_alloc_gib']:.1f}" if "gpu_alloc_gib" in r else "-"
        workers = f"{r.get('workers', 1)}" + (f", {r['processes']} processes"
                                              if r.get("processes") else "")
        lines.append(f"| {r['backend']} | {r.get('detector', 'auto')} | {workers} | "
                     f"{r['streams']} | {r['fps']:.0f} | {r['kept_up']} | "
                     f"{r['delay_p50_ms']:.1f} | {r['delay_p99_ms']:.1f} | {gpu} | "
                     f"{r['cpu_cores']:.2f} | {r['repeats']} |")
    lines.append("")
    for backend, detector, processes in dict.fromkeys(
            (r["backend"], r.get("detector", "auto"), r.get("processes", 0)) for r in rows):
        held = [r["streams"] for r in rows
                if (r["backend"], r.get("detector", "auto"), r.get("processes", 0))
                == (backend, detector, processes)
                and r["kept_up"] and r["delay_p99_ms"] <= TARGET_P99_MS]
        where = f", {processes} analysis processes" if processes else ""
        lines.append(f"most streams held at 147 frames/s with p99 <= {TARGET_P99_MS:g} ms "
                     f"({backend}, detector {detector}{where}): "
                     f"{max(held) if held else 'none of those run'}")
    return lines


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python bench/gpu_table.py RESULTS_DIR")
        return 2
    folder = Path(sys.argv[1])
    network, e2e = _rows(folder / "network.jsonl"), _rows(folder / "e2e.jsonl")
    lines = ["## Network only", *network_table(network), "", "## End to end",
             *e2e_table(e2e)]
    text = "\n".join(lines) + "\n"
    (folder / "table.md").write_text(text)
    print(text)
    return 0 if network or e2e else 1


if __name__ == "__main__":
    sys.exit(main())
