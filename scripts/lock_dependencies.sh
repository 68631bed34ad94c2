#!/usr/bin/env bash
# Re-resolve requirements.lock from pyproject.toml (all extras, every platform, Python 3.11+).
# Run after changing a dependency in pyproject.toml; commit both files together.
# Uses uv only as a resolver; installing stays plain pip (scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet "uv==0.13.8"
"$tools/venv/bin/uv" pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
  --quiet --output-file requirements.lock
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages"
