"""The TensorRT build code calls the 10.x and 11.x APIs correctly, checked against fake
``tensorrt`` modules that record every call (no machine here can run TensorRT).

The fakes follow NVIDIA's documented Python API: 10.x has ``BuilderFlag.FP16/BF16/INT8`` and
``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (and refuses precision flags on a strongly
typed network); 11.x has neither (touching them raises ``AttributeError``, as the removed
attributes do), every network being strongly typed.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from fixtures_models import make_tiny_model_dir

from engine.backends import BackendUnavailable
from engine.backends.onnxruntime_backend import resolve_onnx
from engine.backends.tensorrt_build import (
    BuildSpec,
    build_engine,
    import_tensorrt,
    load_or_build,
    onnx_precision,
    resolve_typing,
)
from engine.models import ModelDir
from engine.models.onnx_reduced import read_precision

pytestmark = pytest.mark.usefixtures("isolated_cache")



class _Names:
    """An enum-like namespace: only the given names exist (others raise AttributeError)."""

    def __init__(self, **members: int) -> None:
        self.__dict__.update(members)


def fake_tensorrt(version: str) -> types.ModuleType:
    """A ``tensorrt`` module of ``version`` ("10.x" or "11.x" API) recording calls in
    ``trt.calls``."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []
    calls = trt.calls
    if major >= 11:
        trt.BuilderFlag = _Names(TF32=6, REFIT=4)
        trt.NetworkDefinitionCreationFlag = _Names(PREFER_AOT_PYTHON_PLUGINS=1)
    else:
        trt.BuilderFlag = _Names(FP16=0, INT8=1, TF32=6, BF16=17)
        trt.NetworkDefinitionCreationFlag = _Names(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    trt.MemoryPoolType = _Names(WORKSPACE=0)

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.strongly_typed = major >= 11 or bool(flags & 2)

    class Parser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path: str) -> bool:
            calls.append(("parse", read_precision(Path(path))))
            return True

    class Cache:
        def serialize(self) -> bytes:
            return b"timing"

    class Config:
        def __init__(self) -> None:
            self.flags: list[int] = []

        def set_flag(self, flag: int) -> None:
            calls.append(("set_flag", flag))
            self.flags.append(flag)

        def set_memory_pool_limit(self, pool: int, size: int) -> None:
            calls.append(("pool", pool, size))

        def add_optimization_profile(self, profile) -> None:
            calls.append(("profile", profile.shapes))

        def create_timing_cache(self, data: bytes) -> Cache:
            return Cache()

        def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> None:
            calls.append(("timing_cache", ignore_mismatch))

        def get_timing_cache(self) -> Cache:
            return Cache()

    class Profile:
        def set_shape(self, name: str, lo, opt, hi) -> None:
            self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger: Logger) -> None:
            pass

        def create_network(self, flags: int = 0) -> Network:
            calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes:
            precision_flags = {0, 1, 17} & set(config.flags)
            if network.strongly_typed and precision_flags:  # as TensorRT 10.x refuses it
                raise RuntimeError("precision flags on a strongly typed network")
            return b"engine"

    trt.Logger, trt.OnnxParser, trt.Builder = Logger, Parser, Builder
    return trt


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    return ModelDir.load(make_tiny_model_dir(tmp_path_factory.mktemp("m") / "m", 2, seed=3))


def _build(trt, model: ModelDir, precision: str, typing: str = "auto") -> list:
    resolved = resolve_typing(trt, precision, typing)
    onnx = resolve_onnx(model, onnx_precision(precision, resolved))
    spec = BuildSpec(onnx, (1, 32, 64), precision, opt_batch=2, max_batch=4, typing=resolved)
    engine, timing = build_engine(trt, spec)
    assert (engine, timing) == (b"engine", b"timing")
    return trt.calls


@pytest.mark.parametrize(("version", "precision", "typing", "network_flags", "flags", "graph"), [
    ("10.3.0", "fp32", "auto", 0, [], "fp32"),
    ("10.3.0", "fp16", "auto", 0, [0], "fp32"),  # weak typing: FP16 flag on the fp32 graph
    ("10.3.0", "bf16", "auto", 0, [17], "fp32"),
    ("10.3.0", "int8", "auto", 0, [0, 1], "fp32"),
    ("10.12.0", "fp16", "strong", 2, [], "fp16"),  # 1 << STRONGLY_TYPED, fp16 graph, no flag
    ("10.12.0", "bf16", "strong", 2, [], "bf16"),
    ("11.0.0", "fp32", "auto", 0, [], "fp32"),
    ("11.0.0", "fp16", "auto", 0, [], "fp16"),  # strong typing is the only mode
    ("11.2.1", "bf16", "strong", 0, [], "bf16"),
])
def test_build_calls(model: ModelDir, version: str, precision: str, typing: str,
                     network_flags: int, flags: list, graph: str) -> None:
    calls = _build(fake_tensorrt(version), model, precision, typing)
    assert calls[0] == ("create_network", network_flags)
    assert ("parse", graph) in calls
    assert [c[1] for c in calls if c[0] == "set_flag"] == flags
    assert ("profile", ("input", (1, 1, 32, 64), (2, 1, 32, 64), (4, 1, 32, 64))) in calls
    assert ("timing_cache", False) in calls


def test_fake_11_rejects_the_removed_flags() -> None:
    """The 11.x fake really lacks what TensorRT 11 removed (so the test above means it)."""
    trt = fake_tensorrt("11.0.0")
    with pytest.raises(AttributeError):
        _ = trt.BuilderFlag.FP16
    with pytest.raises(AttributeError):
        _ = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED


def test_old_code_path_would_fail_on_11(model: ModelDir) -> None:
    """Weak typing forced onto an 11.x install is refused up front with the reason, not an
    AttributeError in the first window."""
    trt = fake_tensorrt("11.0.0")
    with pytest.raises(BackendUnavailable, match="no weak typing"):
        resolve_typing(trt, "fp16", "weak")
    with pytest.raises(BackendUnavailable, match="Q/DQ"):
        resolve_typing(trt, "int8")
    with pytest.raises(BackendUnavailable, match="Q/DQ"):
        resolve_typing(fake_tensorrt("10.3.0"), "int8", "strong")
    with pytest.raises(ValueError, match="typing"):
        resolve_typing(trt, "fp16", "loose")


@pytest.mark.parametrize("version", ["8.6.1", "12.0.0"])
def test_unsupported_versions_refused(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version))
    with pytest.raises(BackendUnavailable, match=r"not supported.*tensorrt>=10,<12"):
        import_tensorrt()


def test_engine_cache_keys_typing(model: ModelDir, tmp_path: Path) -> None:
    """Strong and weak engines of the same precision are different files; the second call
    loads from the cache without building."""
    trt = fake_tensorrt("10.12.0")
    paths = []
    for typing in ("weak", "strong"):
        onnx = resolve_onnx(model, onnx_precision("fp16", typing))
        spec = BuildSpec(onnx, (1, 32, 64), "fp16", 2, 4, typing=typing)
        engine, path = load_or_build(trt, spec, "Fake GPU", (9, 0))
        assert engine == b"engine" and path.is_file()
        paths.append(path)
    assert paths[0] != paths[1] and "-fp16-strong-" in paths[1].name
    n_builds = sum(c[0] == "create_network" for c in trt.calls)
    load_or_build(trt, BuildSpec(resolve_onnx(model, "fp16"), (1, 32, 64), "fp16", 2, 4,
                                 typing="strong"), "Fake GPU", (9, 0))
    assert sum(c[0] == "create_network" for c in trt.calls) == n_builds


def test_reduced_graphs_are_cached_per_precision(model: ModelDir) -> None:
    paths = {p: resolve_onnx(model, p) for p in ("fp32", "fp16", "bf16")}
    assert len(set(paths.values())) == 3
    assert {p: read_precision(path) for p, path in paths.items()} == {
        "fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
    assert resolve_onnx(model, "fp16") == paths["fp16"]
    assert paths["fp16"].stat().st_size > 0
