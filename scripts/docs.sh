#!/usr/bin/env bash
# Build the site and serve it on http://127.0.0.1:8000, rebuilding on every change.
# Extra arguments go to `mkdocs serve` (for example --dev-addr 127.0.0.1:8001).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh site
export NO_MKDOCS_2_WARNING=1 # Material's end-of-life notice: known, and not a build problem.
exec .venv/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8000 "$@"
