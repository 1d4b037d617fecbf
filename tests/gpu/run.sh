#!/usr/bin/env bash
# GPU checks, run by hand on a machine with an NVIDIA GPU (CI has none; the pytest suite skips
# these paths with the reason). Needs onnxruntime-gpu, tensorrt and cuda-python in the venv.
# Builds TensorRT plans for the shipped demo engine (and tiny SDXL/SD3 engines when it can
# export them), compares TensorRT and ORT-CUDA outputs with
# ORT-CPU per component, times one denoising step and whole generations (latents on the device
# and on the host). Budget: well under 8 minutes on one H200.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
# Tiny SDXL and SD3 engines too, when the export tooling (torch, diffusers) is installed here.
extra=()
if timeout 240 "$PY" tests/gpu/export_tiny.py "$OUT/engines"; then
    extra=(--engine "$OUT/engines/sdxl" --engine "$OUT/engines/sd3")
fi
timeout 360 "$PY" tests/gpu/check_gpu.py --out "$OUT/gpu_check.json" "${extra[@]}"
timeout 120 "$PY" -m pytest -q -m gpu tests/test_trt_plans.py | tee "$OUT/pytest_gpu.txt"
# Latents on the device vs on the host, same backend (fp16 plans of a copy of the demo engine).
rm -rf "$OUT/demo-engine"
"$PY" -c "import shutil, sys; from npc_rt.demo import demo_engine_dir; shutil.copytree(demo_engine_dir(), sys.argv[1])" "$OUT/demo-engine"
timeout 120 "$PY" -m npc_rt build "$OUT/demo-engine" --precision fp16
for backend in "--backend trt --precision fp16" "--providers cuda"; do
    # shellcheck disable=SC2086
    timeout 60 "$PY" benches/bench_resident.py --engine "$OUT/demo-engine" $backend --k 4 \
        --steps 8 | tee -a "$OUT/bench_resident.txt"
done
