"""``serve --processes N`` (engine/serve_remote.py, engine/serve_process.py): the streams'
analyzers in other processes give exactly the events of the in-process analysis, stream by
stream and in order, with statistics, summaries and cell votes; a stream whose analysis raises
in its process fails alone, a process that dies fails only the streams it hosted, and the next
stream gets a fresh process.

No fixed sleeps: the server's ``drain`` waits for queued work, a killed process is joined.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from acquisition.simulate import EventStats, LinescanParams, simulate_linescan
from engine.pipeline import DetectorFactory, EngineConfig
from engine.serve import Server
from engine.serve_remote import AnalysisProcesses, AnalysisStartError
from engine.sinks import SinkSet
from tests.fixtures_models import make_tiny_model_dir
from tests.serve_helpers import MemorySink, StubIngest, chunk_item, start_item, stop_item

TIMEOUT_S = 60.0
CHUNK = 150
BLANK = 100.0


@pytest.fixture(scope="module")
def recordings() -> dict[str, np.ndarray]:
    """Four different 64-px line-scans with many sparks (seeded; blank 100, 0.14 µm, 1.5 ms)."""
    params = LinescanParams(n_lines=1800, n_pixels=64,
                            stats=EventStats(spark_rate_per_100um_s=60.0))
    return {f"s{i}": simulate_linescan(params, seed=seed).data
            for i, seed in enumerate((42, 43, 45, 46))}


class RowSink(MemorySink):
    """A memory sink that keeps the streams' rows and cell summaries too."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: dict[str, dict] = {}
        self.cells: dict[str, list[dict]] = {}

    def open_stream(self, info: dict) -> None:
        super().open_stream(info)
        self.streams[info["stream"]] = info

    def write_cell(self, stream: str, summary: dict) -> None:
        self.cells.setdefault(stream, []).append(summary)


def _server(config: EngineConfig, processes: int, workers: int) -> tuple[Server, RowSink]:
    sink = RowSink()
    factory = DetectorFactory(config)
    remote = AnalysisProcesses(config, processes, factory.classifier) if processes else None
    return Server(StubIngest(), factory, SinkSet([sink]), workers=workers,
                  processes=remote), sink


def _start(server: Server, recordings: dict[str, np.ndarray]) -> None:
    for name, data in recordings.items():
        server.handle(start_item(name, data, 0.14, 1.5, blank=BLANK))


def _chunks(server: Server, recordings: dict[str, np.ndarray], lines: range) -> None:
    """The chunks of ``lines``, round robin over the streams, as the dispatcher hands them."""
    for first in range(lines.start, lines.stop, CHUNK):
        for name, data in recordings.items():
            server.handle(chunk_item(name, first // CHUNK + 1, first,
                                     data[first:min(first + CHUNK, lines.stop)]))
        server._periodic()


def _stop(server: Server, recordings: dict[str, np.ndarray]) -> None:
    for name, data in recordings.items():
        server.handle(stop_item(name, len(data)))
    assert server.drain(TIMEOUT_S)


def _run(recordings, config: EngineConfig, processes: int, workers: int
         ) -> tuple[Server, RowSink]:
    server, sink = _server(config, processes, workers)
    try:
        _start(server, recordings)
        _chunks(server, recordings, range(0, 1800))
        _stop(server, recordings)
        server.close()
    finally:
        if server.processes is not None:
            server.processes.close()
    return server, sink


def _as_json(events: list) -> str:
    return json.dumps([e.to_dict() for e in events])


@pytest.mark.parametrize("detector", ["classical", "hybrid"])
def test_processes_give_the_events_of_the_analysis_in_serve(recordings, tmp_path, monkeypatch,
                                                            detector) -> None:
    monkeypatch.setenv("CASTREAM_CACHE_DIR", str(tmp_path / "cache"))  # the processes inherit it
    model = (make_tiny_model_dir(tmp_path / "m", 2, behaviour="threshold", threshold_dff0=0.3)
             if detector == "hybrid" else None)
    config = EngineConfig(model=model, detector=detector, backend="onnxruntime")
    one, sink1 = _run(recordings, config, processes=0, workers=1)
    two, sink2 = _run(recordings, config, processes=2, workers=2)
    assert not one.failed and not two.failed and two.n_done == len(recordings)
    assert not any(p.alive for p in two.processes.processes)  # closed
    for name in recordings:
        assert len(sink1.events[name]) > 3, name
        assert _as_json(sink2.events[name]) == _as_json(sink1.events[name]), name
        ids = [e.event_id for e in sink2.events[name]]
        assert ids == sorted(ids)
        summary1, summary2 = (s.finished[name]["summary"] for s in (one, two))
        for key in ("n_sparks", "n_puffs", "n_waves", "label", "confidence", "freq",
                    "cell_length_um", "duration_s", "detector", "lookahead_ms"):
            assert summary2.get(key) == summary1.get(key), (name, key)
        assert summary2["quality"]["events"] == summary1["quality"]["events"]
        assert sink2.cells[name] and sink2.cells[name][-1] == sink1.cells[name][-1]
        last = sink2.stats[name][-1]  # the final statistics sample, read from the process
        assert last["frames_analyzed"] == 1800 and last["events"] == len(sink1.events[name])
        assert sink2.streams[name]["detector"] == sink1.streams[name]["detector"]


def test_a_failing_stream_and_a_dead_process_stop_only_their_streams(recordings) -> None:
    """Four streams over two processes, two in each (which two depends on the order the
    workers started them): one stream of the second process gets a chunk that raises, the
    first process is killed halfway; the other stream of the second process keeps every
    event, and a stream started afterwards is analysed in a fresh process."""
    config = EngineConfig(detector="classical")
    _, alone = _run(recordings, config, processes=0, workers=1)
    server, sink = _server(config, processes=2, workers=2)
    try:
        _start(server, recordings)
        assert server.drain(TIMEOUT_S)
        first, second = server.processes.processes
        assert len(first.streams) == len(second.streams) == 2
        killed = set(first.streams)  # (a stream leaves the set when it fails or finishes)
        broken, kept = sorted(second.streams)
        _chunks(server, recordings, range(0, 900))
        server.handle(chunk_item(broken, 99, 900, np.zeros((10, 32), np.uint16)))  # wrong width
        assert server.drain(TIMEOUT_S)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.join(TIMEOUT_S)
        _chunks(server, {k: v for k, v in recordings.items() if k != broken}, range(900, 1800))
        _stop(server, recordings)
        assert set(server.failed) == killed | {broken}
        assert "frame shape" in server.failed[broken]
        assert all("exited" in server.failed[name] for name in killed)
        assert _as_json(sink.events[kept]) == _as_json(alone.events[kept])

        late = {"s4": recordings["s0"]}
        _start(server, late)
        assert server.drain(TIMEOUT_S)
        assert server.processes.processes[0] is not first and server.processes.processes[0].alive
        _chunks(server, late, range(0, 1800))
        _stop(server, late)
        assert "s4" in server.finished and "s4" not in server.failed
        assert _as_json(sink.events["s4"]).replace('"stream": "s4"', '"stream": "s0"') \
            .replace('"cell": "s4"', '"cell": "s0"') == _as_json(alone.events["s0"])
        server.close()
    finally:
        server.processes.close()


def test_a_ctrl_c_to_the_process_group_leaves_the_processes_to_serve(recordings) -> None:
    """A terminal's Ctrl-C (SIGINT) and a service manager's SIGTERM reach every process of the
    group: the analysis processes ignore them, so serve can finish every stream itself."""
    config = EngineConfig(detector="classical")
    _, alone = _run(recordings, config, processes=0, workers=1)
    server, sink = _server(config, processes=2, workers=2)
    try:
        _start(server, recordings)
        _chunks(server, recordings, range(0, 900))
        assert server.drain(TIMEOUT_S)
        for process in server.processes.processes:
            os.kill(process.proc.pid, signal.SIGINT)
            os.kill(process.proc.pid, signal.SIGTERM)
        _chunks(server, recordings, range(900, 1800))
        _stop(server, recordings)
        assert not server.failed
        for name in recordings:
            assert _as_json(sink.events[name]) == _as_json(alone.events[name])
        server.close()
    finally:
        server.processes.close()
    assert not any(p.alive for p in server.processes.processes)


def test_a_process_that_cannot_load_its_model_stops_the_start(tmp_path) -> None:
    """A model directory that does not load: one error naming the process and the cause, every
    process stopped."""
    config = EngineConfig(model=tmp_path / "no-such-model", detector="network")
    with pytest.raises(AnalysisStartError, match="analysis process 0 could not start: .*"):
        AnalysisProcesses(config, 2)
