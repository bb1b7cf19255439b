"""Shared pytest fixtures: free endpoints and ingests that are always closed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import pytest


@pytest.fixture
def ipc_endpoint() -> Iterator[str]:
    """A fresh ``ipc://`` endpoint in a short temporary directory (socket paths are limited
    to ~100 characters, which pytest's tmp_path can exceed)."""
    directory = tempfile.mkdtemp(prefix="cs-")
    yield f"ipc://{directory}/ingest.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """castream's cache (exported ONNX graphs, TensorRT engines) in this test's tmp_path, so
    that no test reads what another wrote (use with ``pytest.mark.usefixtures``)."""
    monkeypatch.setenv("CASTREAM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def ingest_factory() -> Iterator[Callable[..., object]]:
    """``make(**kwargs) -> Ingest`` bound to a free localhost TCP port (``ingest.endpoint``);
    every ingest made is closed at teardown."""
    from acquisition.ingest import Ingest

    made: list[Ingest] = []

    def make(endpoint: str = "tcp://127.0.0.1:0", **kwargs) -> Ingest:
        ingest = Ingest(endpoint, **kwargs)
        made.append(ingest)
        return ingest

    yield make
    for ingest in made:
        ingest.close()


def drain_ingest(ingest, timeout_s: float = 0.2) -> dict[str, list]:
    """All queued items, grouped per stream id, until nothing arrives for ``timeout_s``."""
    items: dict[str, list] = {}
    while (item := ingest.get(timeout_s=timeout_s)) is not None:
        items.setdefault(item.header.stream, []).append(item)
    return items


def chunk_data(items: list) -> np.ndarray:
    """Concatenated data of the ``ChunkReceived`` items, in order of ``first``."""
    from acquisition.ingest import ChunkReceived

    chunks = sorted((i for i in items if isinstance(i, ChunkReceived)),
                    key=lambda i: i.header.first)
    return np.concatenate([c.data for c in chunks])


@pytest.fixture
def drain() -> Callable[..., dict[str, list]]:
    return drain_ingest


@pytest.fixture
def chunks_of() -> Callable[[list], np.ndarray]:
    return chunk_data
