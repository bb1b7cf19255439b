"""A publisher that dies without a stop does not leave its stream open in ``serve`` for ever
(issue 11): after the idle timeout the stream is closed as *abandoned*, its recording holds
every acknowledged chunk, the store marks it, and a late chunk is refused as ``abandoned``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from acquisition.ingest_idle import idle_streams
from acquisition.ingest_state import StreamState, StreamStats
from acquisition.publisher import Publisher, PublisherRefused
from acquisition.simulate import LinescanParams, simulate_linescan
from acquisition.wire import StartHeader
from engine.pipeline import EngineConfig
from engine.runtime import background_server
from engine.sinks.store import SqliteStore

TIMEOUT_S = 60.0


def test_silent_stream_is_abandoned_and_nothing_acknowledged_is_lost(tmp_path: Path,
                                                                     ipc_endpoint: str) -> None:
    data = simulate_linescan(LinescanParams(n_lines=1200, n_pixels=64), seed=5).data
    with background_server(endpoint=ipc_endpoint, store=tmp_path / "s.sqlite",
                           record_dir=tmp_path / "raw", config=EngineConfig(detector="classical"),
                           stream_idle_timeout_s=0.5) as server:
        pub = Publisher(ipc_endpoint, stream="ghost", chunk_lines=100)
        try:
            pub.start("linescan", "uint16", (64,), pixel_um=0.2, dt_ms=1.5)
            pub.send(data[:800])
            report = pub.sync()  # acknowledged: recorded and synced
            assert report.recorded == 800
            # the publisher goes silent without a stop, as if killed
            assert server.wait_finished(1, TIMEOUT_S)
            assert server.finished["ghost"]["abandoned"]
            assert server.ingest.wait_until_stopped(["ghost"], TIMEOUT_S)
            stats = server.ingest.stats()["ghost"]
            assert stats.abandoned and stats.errors_by_code == {"abandoned": 1}
            with pytest.raises(PublisherRefused) as refused:  # a late chunk is refused
                pub.send(data[800:])
                pub.sync()
            assert refused.value.code == "abandoned"
        finally:
            pub.close(linger_ms=0)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "raw" / "ghost.tif"), data[:800])
    latest = SqliteStore(tmp_path / "s.sqlite", readonly=True).latest_stats("ghost")
    assert latest["abandoned"] is True
    assert latest["lag_s"] >= 0.0  # the wall-clock lag is in every sample


def test_idle_check_counts_from_the_last_message_or_the_last_backpressure() -> None:
    header = StartHeader(stream="s", seq=0, mode="linescan", dtype="uint16", shape=(8,),
                         pixel_um=0.2, dt_ms=1.0)
    state = StreamState(header, StreamStats("s", last_receive_s=100.0))
    assert idle_streams([state], 105.0, 4.0) == [state]
    assert idle_streams([state], 103.0, 4.0) == []
    assert idle_streams([state], 105.0, 4.0, busy_until_s=102.0) == []  # ingest was blocked
    assert idle_streams([state], 1e9, None) == [] and idle_streams([state], 1e9, 0) == []
