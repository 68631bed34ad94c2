#!/usr/bin/env bash
# The benchmarks: the catalog read path, the write path and the docs build, written as data to
# docs/data/benchmarks.json (rendered by the docs build into the Performance page).
#
#   scripts/benchmark.sh                      everything (several minutes)
#   scripts/benchmark.sh catalog-read         one benchmark (also write-path, docs-build);
#                                             the file's other sections are kept
#   scripts/benchmark.sh --quick --output F   a second or two each, into F (a smoke test)
#
# Sets up like scripts/test.sh (PostgreSQL, redis-server and the Python packages), then runs
# the Python package scripts/benchmarks with the virtual environment's interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh test
export NO_MKDOCS_2_WARNING=1 # Material's end-of-life notice: known, and not a build problem.
exec .venv/bin/python -m benchmarks "$@"
