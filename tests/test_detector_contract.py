"""The detector contract (engine/detectors.py ``Detector``): every detector implements all of
it, and the analyzer's compute delay has one path whatever the detector -- a chunk is timed
from its arrival to the post-processing of the frames it completed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from fixtures_models import make_tiny_model_dir

from acquisition.simulate import LinescanParams, simulate_linescan
from acquisition.stream_kind import StreamKind
from engine.analyzer import StreamInfo
from engine.detectors import ClassicalStreamDetector, Detector, NetworkDetector
from engine.hybrid import HybridDetector, HybridParams
from engine.pipeline import DetectorFactory, EngineConfig, run_stream
from engine.serve_shared import _GuardedNetwork

pytestmark = pytest.mark.usefixtures("isolated_cache")

INFO = StreamInfo("s", StreamKind.LINESCAN, (32,), 0.14, 1.5)


def _factory(tmp_path: Path, **config) -> DetectorFactory:
    model = make_tiny_model_dir(tmp_path / "m", 2, behaviour="threshold", threshold_dff0=0.3)
    return DetectorFactory(EngineConfig(model=model, backend="onnxruntime", **config))


def test_every_detector_implements_the_whole_contract(tmp_path: Path) -> None:
    factory = _factory(tmp_path, detector="network")
    network = factory.detector(INFO)
    classical = ClassicalStreamDetector(0.14, 1.5, (32,))
    hybrid = HybridDetector(factory.detector(INFO), ClassicalStreamDetector(0.14, 1.5, (32,)),
                            HybridParams())
    guarded = _GuardedNetwork(factory.detector(INFO), threading.RLock())
    assert isinstance(network, NetworkDetector)
    for detector in (network, classical, hybrid, guarded):
        assert isinstance(detector, Detector), type(detector).__name__
        assert (detector.n_submitted, detector.n_delivered, detector.has_ready) == (0, 0, False)
        assert detector.take_ready() == []
    factory.close()


@pytest.mark.parametrize("detector", ["network", "classical"])
def test_unshared_detectors_deliver_each_push(tmp_path: Path, detector: str) -> None:
    """Without a cross-stream batcher every block comes back from its push: nothing waits
    for ``take_ready`` and all submitted work is delivered."""
    factory = _factory(tmp_path, detector=detector)
    det = factory.detector(INFO)
    data = np.random.default_rng(0).normal(0, 0.3, (300, 32)).astype(np.float32)
    frames = 0
    for first in range(0, 300, 50):
        frames += sum(b.probs.shape[0] for b in det.push(first, data[first:first + 50]))
        assert not det.has_ready and det.n_delivered == det.n_submitted
    frames += sum(b.probs.shape[0] for b in det.flush())
    assert frames == det.n_submitted == det.n_delivered == 300
    factory.close()


@pytest.mark.parametrize("config", [{"detector": "classical"}, {"detector": "network"},
                                    {"detector": "network", "batch": True,
                                     "max_batch": 10_000, "max_wait_ms": 1e6}])
def test_one_delay_path(tmp_path: Path, config: dict) -> None:
    """Each chunk that completed frames gives one non-negative delay sample, batched or not; a cross-stream batcher that runs only at the end makes the delays grow with the
    time the windows waited (queue time counts)."""
    rec = simulate_linescan(LinescanParams(n_lines=600, n_pixels=32), seed=4)
    factory = _factory(tmp_path, **config)
    analyzer = factory.analyzer(StreamInfo("s", StreamKind.LINESCAN, (32,), rec.pixel_um,
                                           rec.dt_ms, rec.blank))
    run_stream(analyzer, ((i, rec.data[i:i + 40]) for i in range(0, 600, 40)))
    delays = list(analyzer.stats.delays_ms)
    assert delays and min(delays) >= 0.0
    assert len(delays) <= 600 // 40 + 1
    assert not analyzer._arrivals  # every chunk's work was delivered and timed
    if config.get("batch"):
        assert delays == sorted(delays, reverse=True)  # all delivered at once, at the end
    factory.close()
