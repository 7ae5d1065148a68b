#!/usr/bin/env bash
# The whole check, as CI runs it: set up, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
uv run ruff check src tests bench
uv run ruff format --check src tests bench
uv run mypy
uv run pytest -q "$@"
