#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh --dev
source .venv/bin/activate

echo "== rust: fmt, clippy, core tests"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test -p npc-core --release

echo "== python: lint and tests (install.sh built the extension in release mode)"
ruff check python tests benches export
ruff format --check python tests benches export
python -m pytest -q "$@"
