"""Models and backends load when ``serve`` starts, not when the first stream arrives
(issue 12, Build 7): counted with a spy on the factory's loader, not by timing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acquisition.publisher import Publisher
from acquisition.stream_kind import StreamKind
from engine.pipeline import DetectorFactory, EngineConfig
from engine.runtime import background_server
from engine.serve import Server
from tests.fixtures_models import make_tiny_model_dir


@pytest.fixture
def load_spy(monkeypatch) -> list[StreamKind]:
    """Kinds of the models the factory opens, in order."""
    opened: list[StreamKind] = []
    real_open = DetectorFactory._open

    def spy(self, path, kind=None):
        loaded = real_open(self, path, kind)
        opened.append(loaded.model.config.stream_kind)
        return loaded

    monkeypatch.setattr(DetectorFactory, "_open", spy)
    return opened


def test_model_loads_before_the_first_stream(tmp_path: Path, ipc_endpoint: str, load_spy,
                                             monkeypatch) -> None:
    model = make_tiny_model_dir(tmp_path / "line", ndim=2, behaviour="threshold")
    loads_at_first_chunk: list[int] = []
    real_chunk = Server._chunk

    def chunk_spy(self, item):
        loads_at_first_chunk.append(len(load_spy))
        return real_chunk(self, item)

    monkeypatch.setattr(Server, "_chunk", chunk_spy)
    config = EngineConfig(model=model, backend="torch", detector="network")
    with background_server(endpoint=ipc_endpoint, store=None, record_dir=None,
                           config=config) as server:
        assert load_spy == [StreamKind.LINESCAN], "the model must be loaded when serve starts"
        with Publisher(ipc_endpoint, stream="first") as pub:
            pub.start("linescan", "uint16", (64,), pixel_um=0.14, dt_ms=1.5)
            pub.send(np.full((300, 64), 200, np.uint16))
        assert server.wait_finished(1, timeout_s=60)
    assert loads_at_first_chunk and loads_at_first_chunk[0] == 1
    assert load_spy == [StreamKind.LINESCAN], "no stream may load it again"


def test_default_models_of_both_kinds_load_at_start(load_spy, monkeypatch) -> None:
    class _Backend:
        name, device, reason = "stub", "cpu", ""

        def close(self) -> None:
            pass

    monkeypatch.setattr("engine.backends.make_backend", lambda *args, **kwargs: _Backend())
    factory = DetectorFactory(EngineConfig(detector="network"))
    assert factory.load_models() == [StreamKind.LINESCAN, StreamKind.MOVIE]
    assert load_spy == [StreamKind.LINESCAN, StreamKind.MOVIE]
    assert DetectorFactory(EngineConfig(detector="classical")).load_models() == []
    assert load_spy == [StreamKind.LINESCAN, StreamKind.MOVIE]
