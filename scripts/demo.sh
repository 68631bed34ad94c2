#!/usr/bin/env bash
# The onboarding demo: the whole storefront on this machine (moto, throwaway PostgreSQL and Redis,
# every service on its own localhost port), one scenario walked with a narrative, then the
# services stay up with curl examples until Ctrl-C. Arguments go to scripts/demo.py:
#   --scenario N   1 place an order (default), 2 traffic spike, 3 a dependency fails,
#                  4 replay and recovery, 5 abuse and attack
#   --no-wait      tear down after the walk instead of waiting for Ctrl-C
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh test
exec .venv/bin/python scripts/demo.py "$@"
