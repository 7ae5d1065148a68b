#!/usr/bin/env bash
# Installs everything traceyard's demo and tests need on a fresh Debian machine (idempotent).
#   scripts/setup.sh          Python environment only (what the demo needs)
#   scripts/setup.sh --test   also Debian's chromium and nginx, a running PostgreSQL, and the
#                             Arize Phoenix server the forwarding test sends to
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet uv
fi
uv sync --quiet --all-extras

if [[ "${1:-}" == "--test" ]]; then
    missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    if (( ${#missing[@]} )); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # PostgreSQL must be up: its tests fail (never skip) when it is not.
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
        if [[ -n "$version" ]]; then
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        fi
        for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
    fi
    # A real Arize Phoenix server for tests/test_forward_phoenix.py, in a venv of its own (its
    # ~150 pinned dependencies stay out of ours), rebuilt only when the pins change; the test
    # fails, naming this script, when the venv does not match them.
    phoenix_venv=.cache/phoenix-venv
    phoenix_pins=tests/phoenix-requirements.txt
    if ! cmp -s "$phoenix_pins" "$phoenix_venv/.requirements"; then
        uv venv -q --allow-existing --python 3.11 "$phoenix_venv"
        uv pip sync -q --python "$phoenix_venv/bin/python" "$phoenix_pins"
        cp "$phoenix_pins" "$phoenix_venv/.requirements"
    fi
fi
