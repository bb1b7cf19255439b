#!/usr/bin/env bash
# The whole GPU check in one prepared run (about 9 min on an H200): environment, GPU tests,
# network-only throughput, end to end with many streams (threads, the per-pixel work on the
# GPU and on the CPU, then analysis processes),
# and a final table.
#
#   bench/gpu_check.sh RESULTS_DIR          # on the GPU machine, from anywhere
#   CASTREAM_GPU_CHECK_CPU=1 bench/gpu_check.sh RESULTS_DIR   # dry run on CPU, tiny sizes
#   bench/gpu_check.sh --dry-run RESULTS_DIR                  # the same
#
# Everything printed is also in RESULTS_DIR/gpu_check.log; the measurements are
# RESULTS_DIR/network.jsonl, RESULTS_DIR/e2e.jsonl, RESULTS_DIR/pytest-gpu.xml and the final
# RESULTS_DIR/table.md. A step that fails or runs out of its time box is reported and the
# next step still runs; the exit status is 1 if any step failed.
#
# It runs on the machine's own python ($PYTHON, default python3) with this checkout on
# PYTHONPATH (nothing is installed). Packages that python lacks (on the lent H200: pyzmq)
# travel as wheels, installed into /tmp/castream-site from the first folder that holds any of:
# $CASTREAM_WHEELS_DIR, .whl, shared/wheels, bench/wheels. Fill one here, e.g.
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_26_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl pyzmq==27.3.0
#
# (.whl is git-ignored: name it in the device tool's `carry`). Time boxes per step (seconds)
# can be changed with CASTREAM_GPU_CHECK_{PYTEST,NETWORK,E2E,E2E_DEFAULT,E2E_DENSE,E2E_PROC}_S.
set -euo pipefail

DRY=${CASTREAM_GPU_CHECK_CPU:-0}
if [[ "${1:-}" == "--dry-run" ]]; then
    DRY=1
    shift
fi
RESULTS=${1:?usage: bench/gpu_check.sh [--dry-run] RESULTS_DIR}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
rm -f "$RESULTS"/network.jsonl "$RESULTS"/e2e.jsonl "$RESULTS"/table.md
exec > >(tee "$RESULTS/gpu_check.log") 2>&1

PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export CASTREAM_CACHE_DIR=${CASTREAM_CACHE_DIR:-/tmp/castream-gpu-check-cache}
FAILED=()

step() {  # step NAME SECONDS COMMAND...: run with a time box, record failures, go on
    local name=$1 seconds=$2 start=$SECONDS rc=0
    shift 2
    echo
    echo "=== $name (time box ${seconds}s) ==="
    timeout --signal=INT --kill-after=15 "$seconds" "$@" || rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start)) s ==="
    if [[ $rc -ne 0 ]]; then
        FAILED+=("$name (exit $rc$([[ $rc -eq 124 ]] && echo ', time box'))")
    fi
}

echo "=== castream GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), dry run: $DRY ==="
echo "checkout: $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "results: $RESULTS"

# -- wheels that travel with the checkout --------------------------------------------------
for dir in "${CASTREAM_WHEELS_DIR:-}" .whl shared/wheels bench/wheels; do
    if [[ -n "$dir" ]] && compgen -G "$dir/*.whl" >/dev/null; then
        echo "installing wheels from $dir: $(cd "$dir" && ls ./*.whl | xargs -n1 basename | tr '\n' ' ')"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/castream-site "$dir"/*.whl
        export PYTHONPATH="/tmp/castream-site${PYTHONPATH:+:$PYTHONPATH}"
        break
    fi
done
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# -- 1. environment -------------------------------------------------------------------------
echo
echo "=== environment ==="
uname -a
nproc
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
else
    echo "nvidia-smi: not found (no NVIDIA driver here)"
fi
"$PY" - <<'EOF'
import importlib, importlib.util, platform
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, GPU visible: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU 0: {p.name}, {p.total_memory / 2**30:.0f} GiB, sm{p.major}{p.minor}, "
          f"{p.multi_processor_count} SMs, bf16: {torch.cuda.is_bf16_supported()}")
for name in ("numpy", "scipy", "onnx", "onnxruntime", "tensorrt", "zmq", "msgpack", "safetensors",
             "skimage", "cupy", "triton"):
    spec = importlib.util.find_spec(name)
    version = getattr(importlib.import_module(name), "__version__", "?") if spec else "MISSING"
    print(f"  {name:<12} {version}")
EOF
if ! "$PY" -c "import zmq, msgpack, engine.serve" 2>/dev/null; then
    echo "castream cannot be imported here (missing pyzmq? see the wheels note at the top of this script)"
    FAILED+=("imports")
fi

# -- 2. GPU tests ---------------------------------------------------------------------------
step "pytest -m gpu" "${CASTREAM_GPU_CHECK_PYTEST_S:-150}" \
    "$PY" -m pytest -q -p no:cacheprovider -m gpu -rfs --tb=short --junitxml="$RESULTS/pytest-gpu.xml" \
    tests/test_gpu_backends.py tests/test_tensorrt_backend.py tests/test_dense_ops.py

# -- 3. network only ------------------------------------------------------------------------
if [[ "$DRY" == 1 ]]; then
    NETWORK_ARGS=(--cpu --batches 1,2 --precisions fp32 --repeats 2 --budget-s 0.5)
    E2E_ARGS=(--cpu-smoke --e2e-repeats 2 --workers 2 --detector network)
    E2E_DEFAULT_ARGS=(--cpu-smoke --e2e-repeats 1 --workers 2)
    E2E_DENSE_CPU_ARGS=(--cpu-smoke --e2e-repeats 1 --workers 2 --dense-device cpu)
    E2E_PROCESSES_ARGS=(--cpu-smoke --e2e-repeats 1 --processes 2)
else
    # fp32 and batch 1 were measured in the first runs (bench/results); this run compares
    # float32 probabilities copied back with float16 ones (half-out), and those copies
    # overlapped with compute (half-out-ov4)
    NETWORK_ARGS=(--batches 8,32,64 --precisions bf16,fp16 --variants base,half-out,half-out-ov4
                  --repeats 10 --budget-s 1.0 --dotti-max-batch 8)
    # 8 post-processing threads (serve --workers): with 1, one stream's classical half alone
    # kept the H200 machine's core from real time (README "GPU"). The network detector shows
    # what the GPU path holds; the default (hybrid) detector adds the classical half on CPU.
    E2E_ARGS=(--streams 1,8,32,100 --seconds 5 --e2e-repeats 3 --workers 8 --detector network
              --backends "torch-cuda-bf16-half-out,tensorrt-fp16")
    E2E_DEFAULT_ARGS=(--streams 1,8 --seconds 5 --e2e-repeats 1 --workers 8
                      --backends "torch-cuda-bf16-half-out")
    # the before of the per-pixel reductions on the GPU (engine/dense_ops.py, new since the
    # H200 runs; the step above runs them there): the same run with them on the CPU
    E2E_DENSE_CPU_ARGS=("${E2E_DEFAULT_ARGS[@]}" --dense-device cpu)
    # serve --processes (new since the H200 runs): the default detector's CPU work in 16
    # processes instead of threads held to one interpreter lock; each process its own backend
    E2E_PROCESSES_ARGS=(--streams 8,32 --seconds 5 --e2e-repeats 1 --processes 16
                        --backends "torch-cuda-bf16-half-out")
fi
step "network throughput" "${CASTREAM_GPU_CHECK_NETWORK_S:-130}" \
    "$PY" bench/gpu_network.py --json "$RESULTS/network.jsonl" "${NETWORK_ARGS[@]}"

# -- 4. end to end --------------------------------------------------------------------------
step "end to end, network detector" "${CASTREAM_GPU_CHECK_E2E_S:-170}" \
    "$PY" bench/gpu_streams.py --skip-network --json "$RESULTS/e2e.jsonl" "${E2E_ARGS[@]}"
step "end to end, default detector" "${CASTREAM_GPU_CHECK_E2E_DEFAULT_S:-90}" \
    "$PY" bench/gpu_streams.py --skip-network --json "$RESULTS/e2e.jsonl" "${E2E_DEFAULT_ARGS[@]}"
step "end to end, default detector, per-pixel work on the CPU" "${CASTREAM_GPU_CHECK_E2E_DENSE_S:-75}" \
    "$PY" bench/gpu_streams.py --skip-network --json "$RESULTS/e2e.jsonl" "${E2E_DENSE_CPU_ARGS[@]}"

step "end to end, default detector, analysis processes" "${CASTREAM_GPU_CHECK_E2E_PROC_S:-120}" \
    "$PY" bench/gpu_streams.py --skip-network --json "$RESULTS/e2e.jsonl" "${E2E_PROCESSES_ARGS[@]}"

# -- 5. table -------------------------------------------------------------------------------
step "table" 20 "$PY" bench/gpu_table.py "$RESULTS"

echo
if [[ ${#FAILED[@]} -eq 0 ]]; then
    echo "=== GPU check done: every step passed (dry run: $DRY) ==="
else
    echo "=== GPU check done; failed: ${FAILED[*]} (dry run: $DRY) ==="
    exit 1
fi
