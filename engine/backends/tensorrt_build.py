"""Building TensorRT engines from the model's ONNX graph, and their on-disk cache.

An engine is specific to the GPU (name + compute capability), the TensorRT version, the model
(hash of the ONNX bytes), the precision, the fixed window shape ``(1, W, *spatial)`` and the
batch range of its optimization profile (min 1, opt, max). All of these are in the cache key::

    $CASTREAM_CACHE_DIR/tensorrt/<gpu>-sm<major><minor>-trt<version>/
        <model hash>-<precision>-<W>x<Y>x<X>-b1-<opt>-<max>.engine
        timing.cache            (shared by every build on that GPU + TensorRT version)

Engines are built on the target GPU and never committed (DESIGN.md). The module imports
``tensorrt`` only through :func:`import_tensorrt`, which raises
:class:`~engine.backends.BackendUnavailable` when it is missing or of an unsupported version.

Versions and precision (NVIDIA's 10.x → 11.x migration guide):

- **TensorRT 10.x**, ``typing="weak"`` (the default there): the float32 ONNX graph and the
  builder flags ``BuilderFlag.FP16`` / ``BF16`` / ``INT8``, TensorRT choosing per layer;
  ``typing="strong"``: the network is created with
  ``1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED`` from a reduced-precision ONNX graph
  (:mod:`engine.models.onnx_reduced`) and no precision flag is set (TensorRT refuses them on a
  strongly typed network).
- **TensorRT 11.x**: every network is strongly typed (the creation flag is deprecated and
  ignored, so it is not passed) and the precision flags no longer exist: reduced precision
  comes only from the reduced-precision ONNX graph. ``typing="weak"`` and ``int8`` (which
  needs an explicitly quantized Q/DQ graph castream does not make) are refused with a reason.

No machine available to this project could run TensorRT: this module is checked against fake
``tensorrt`` modules that record the calls (``tests/test_tensorrt_versions.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import BackendUnavailable
from .onnxruntime_backend import cache_dir as onnx_cache_dir

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
TYPINGS = ("auto", "weak", "strong")
SUPPORTED_MAJORS = (10, 11)  # keep in step with the `tensorrt` extra in pyproject.toml
INPUT_NAME, OUTPUT_NAME = "input", "probabilities"  # names fixed by export_onnx
_LOGGER: Any = None  # TensorRT needs its logger to outlive builders, runtimes and engines


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`BackendUnavailable` saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(
            "TensorRT backend not available: the 'tensorrt' Python package is not installed "
            f"({exc}); install TensorRT for this CUDA version (pip install tensorrt), or use "
            "'torch' (CUDA) or 'onnxruntime'") from exc
    check_version(trt)
    return trt


def check_version(trt: Any) -> int:
    """The major version of ``trt``, or :class:`BackendUnavailable` outside 10.x-11.x."""
    major = trt_major(trt)
    if major not in SUPPORTED_MAJORS:
        raise BackendUnavailable(
            f"TensorRT {trt.__version__} is not supported (castream supports 10.x and 11.x: "
            "pip install 'tensorrt>=10,<12')")
    return major


def trt_logger(trt: Any) -> Any:
    """The process-wide TensorRT logger (warnings and errors)."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def resolve_typing(trt: Any, precision: str, typing: str = "auto") -> str:
    """"weak" (builder flags on the float32 graph) or "strong" (the precision is the graph's)
    for ``precision`` on this TensorRT; :class:`BackendUnavailable` when it cannot be built."""
    if typing not in TYPINGS:
        raise ValueError(f"typing must be one of {TYPINGS}, got {typing!r}")
    major = check_version(trt)
    if major >= 11:
        if typing == "weak":
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no weak typing (the "
                                     "precision builder flags were removed in 11.0); use "
                                     "typing 'strong' or 'auto'")
        typing = "strong"
    elif typing == "auto":
        typing = "weak"
    if precision == "int8" and typing == "strong":
        raise BackendUnavailable(f"int8 on a strongly typed network (TensorRT "
                                 f"{trt.__version__}) needs an explicitly quantized Q/DQ ONNX "
                                 "graph, which castream does not make; use fp16 or bf16")
    return typing


def onnx_precision(precision: str, typing: str) -> str:
    """Precision of the ONNX graph the engine is built from: the float32 graph for weak
    typing (the builder flags pick the precision), the reduced graph for strong typing."""
    return precision if typing == "strong" else "fp32"


@dataclass(frozen=True)
class BuildSpec:
    """Everything an engine depends on besides the GPU and the TensorRT version."""

    onnx_path: Path
    window_shape: tuple[int, ...]  # (1, W, *spatial), already padded to the size multiple
    precision: str = "fp16"
    opt_batch: int = 8
    max_batch: int = 32
    workspace_bytes: int = 4 << 30
    typing: str = "weak"  # resolved: "weak" | "strong" (resolve_typing)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.typing not in ("weak", "strong"):
            raise ValueError(f"typing must be resolved to 'weak' or 'strong', got "
                             f"{self.typing!r}")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= opt_batch <= max_batch, got {self.opt_batch}, "
                             f"{self.max_batch}")

    def profile(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.window_shape)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def cache_root() -> Path:
    """``$CASTREAM_CACHE_DIR/tensorrt`` (default ``~/.cache/castream/tensorrt``)."""
    return onnx_cache_dir().parent / "tensorrt"


def gpu_cache_dir(gpu_name: str, capability: tuple[int, int], trt_version: str) -> Path:
    """Cache folder of one GPU model + compute capability + TensorRT version."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    return cache_root() / f"{slug}-sm{capability[0]}{capability[1]}-trt{trt_version}"


def engine_file_name(spec: BuildSpec, model_hash: str) -> str:
    shape = "x".join(str(s) for s in spec.window_shape[1:])
    typing = "-strong" if spec.typing == "strong" else ""
    return (f"{model_hash}-{spec.precision}{typing}-{shape}-b1-{spec.opt_batch}-"
            f"{spec.max_batch}.engine")


def network_flags(trt: Any, typing: str = "weak") -> int:
    """Network creation flags: explicit batch is the only mode from 10.0 (no flag); a strongly
    typed network needs ``STRONGLY_TYPED`` on 10.x and is the only kind on 11.x, where the flag
    is deprecated and ignored (not passed)."""
    if typing == "strong" and check_version(trt) == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def set_precision(trt: Any, config: Any, precision: str, typing: str = "weak") -> None:
    """Builder flags for ``precision`` under weak typing (TensorRT 10.x; TensorRT may still
    pick fp32 where it is faster); none under strong typing, where the graph has the types."""
    if typing == "strong":
        return
    if check_version(trt) >= 11:
        raise BackendUnavailable(f"TensorRT {trt.__version__} has no precision builder flags")
    if precision == "fp16" or precision == "int8":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise BackendUnavailable(f"TensorRT {trt.__version__} has no bf16 (needs >= 9)")
        config.set_flag(trt.BuilderFlag.BF16)
    if precision == "int8":
        log.warning("TensorRT int8 needs an explicitly quantized (Q/DQ) ONNX graph; layers "
                    "without scales run in fp16")
        config.set_flag(trt.BuilderFlag.INT8)


def parse_onnx(trt: Any, builder: Any, onnx_path: Path,
               typing: str = "weak") -> tuple[Any, Any]:
    """``(network, parser)`` for ``onnx_path`` (parser errors listed in the exception)."""
    network = builder.create_network(network_flags(trt, typing))
    parser = trt.OnnxParser(network, trt_logger(trt))
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT could not parse {onnx_path}: {errors}")
    return network, parser  # the parser must outlive the network


def build_engine(trt: Any, spec: BuildSpec, timing_cache: bytes = b"") -> tuple[bytes, bytes]:
    """Build a serialized engine for ``spec``; returns ``(engine, updated timing cache)``."""
    builder = trt.Builder(trt_logger(trt))
    network, _parser = parse_onnx(trt, builder, spec.onnx_path, spec.typing)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_bytes)
    set_precision(trt, config, spec.precision, spec.typing)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, spec.profile(1), spec.profile(spec.opt_batch),
                      spec.profile(spec.max_batch))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT engine build failed for {spec} (see the TensorRT log)")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


def load_or_build(trt: Any, spec: BuildSpec, gpu_name: str,
                  capability: tuple[int, int]) -> tuple[bytes, Path]:
    """Serialized engine from the cache, or built now (and cached with the timing cache)."""
    folder = gpu_cache_dir(gpu_name, capability, str(trt.__version__))
    path = folder / engine_file_name(spec, file_hash(spec.onnx_path))
    if path.is_file():
        log.info("TensorRT engine from cache %s", path)
        return path.read_bytes(), path
    folder.mkdir(parents=True, exist_ok=True)
    timing_path = folder / "timing.cache"
    timing = timing_path.read_bytes() if timing_path.is_file() else b""
    log.info("building TensorRT %s engine %s (%s typing; minutes on first use, cached after)",
             trt.__version__, path.name, spec.typing)
    engine, timing = build_engine(trt, spec, timing)
    _atomic_write(path, engine)
    _atomic_write(timing_path, timing)
    return engine, path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # concurrent processes never see a partial file
