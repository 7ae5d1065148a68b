#!/usr/bin/env bash
# Sets up and runs the demo: a small LangGraph agent (fake model) traced into SQLite, UI served.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec uv run traceyard demo "$@"
