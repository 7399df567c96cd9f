#!/usr/bin/env bash
# The one command that runs every test: Rust build + unit tests, then the
# end-to-end suite (pytest, real client libraries against a real broker).
#
# Env:
#   PYTHON         interpreter used to create .venv (default: python3)
#   PYTEST_ARGS    extra pytest arguments (e.g. "-k restart -x")
#   SLUICE_BIN     broker binary for the e2e tests (default target/release/sluice)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

echo "==> cargo build --release --workspace"
cargo build --release --workspace

echo "==> cargo test --release --workspace"
cargo test --release --workspace

VENV="$ROOT/.venv"
REQ="$ROOT/tests/e2e/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    echo "==> installing e2e requirements"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$REQ"
    echo "$want" > "$STAMP"
fi

if ! command -v kcat >/dev/null 2>&1 && ! command -v kafkacat >/dev/null 2>&1; then
    echo "WARNING: kcat not found; tests/e2e/test_kcat.py will FAIL (apt-get install kcat)" >&2
fi

# KafkaJS for tests/e2e/test_kafkajs.py (pinned by package-lock.json).
JS="$ROOT/tests/e2e/js"
if command -v npm >/dev/null 2>&1; then
    if [[ ! -d "$JS/node_modules/kafkajs" || "$JS/package-lock.json" -nt "$JS/node_modules" ]]; then
        echo "==> npm ci (KafkaJS)"
        npm ci --prefix "$JS" --no-audit --no-fund --silent
    fi
else
    echo "WARNING: npm not found; tests/e2e/test_kafkajs.py will FAIL" >&2
fi

export SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
echo "==> pytest tests/e2e (broker: $SLUICE_BIN)"
# shellcheck disable=SC2086
exec "$VENV/bin/pytest" -v tests/e2e ${PYTEST_ARGS:-}
