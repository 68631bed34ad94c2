#!/usr/bin/env bash
# Set up everything one of the README commands needs, and skip what is already there.
#
#   scripts/bootstrap.sh site   the docs build: Python packages and Graphviz
#   scripts/bootstrap.sh test   the test suite: also PostgreSQL server binaries, redis-server,
#                               Chromium and Node.js
#
# Python packages go into .venv at the repository root, pinned by requirements.lock. A stamp
# (the hash of requirements.lock and pyproject.toml) makes a second run skip the install.
# Missing system tools are installed with apt-get when running as root on Debian/Ubuntu;
# otherwise the script stops and prints the exact command to run (apt and Homebrew).
set -euo pipefail

purpose="${1:-}"
case "$purpose" in
  site | test) ;;
  *)
    echo "usage: scripts/bootstrap.sh site|test" >&2
    exit 2
    ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"
python="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- system tools --------------------------------------------------------------------------
# Each entry: "<how to find it>|<apt package>|<Homebrew formula>".
# The PostgreSQL check looks where Debian puts the server binaries (not on PATH by default).
find_postgres_bindir() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  local candidate
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/pg_ctl" ] && [ -x "$candidate/initdb" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

has_tool() {
  case "$1" in
    dot) command -v dot >/dev/null 2>&1 ;;
    postgres) find_postgres_bindir >/dev/null ;;
    redis-server) command -v redis-server >/dev/null 2>&1 ;;
    chromium) command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ;;
    node) command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

apt_package() {
  case "$1" in
    dot) echo graphviz ;;
    postgres) echo postgresql ;;
    redis-server) echo redis-server ;;
    chromium) echo chromium ;;
    node) echo "nodejs npm" ;;
  esac
}

brew_package() {
  case "$1" in
    dot) echo graphviz ;;
    postgres) echo postgresql@17 ;;
    redis-server) echo redis ;;
    chromium) echo "--cask chromium" ;;
    node) echo node ;;
  esac
}

tools=(dot)
if [ "$purpose" = test ]; then
  tools+=(postgres redis-server chromium node)
fi

missing=()
for tool in "${tools[@]}"; do
  has_tool "$tool" || missing+=("$tool")
done

python_ok() {
  "$python" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    >/dev/null 2>&1
}

apt_install() {
  say "Installing with apt-get: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2068
  apt-get install -y -qq --no-install-recommends $@ >/dev/null
}

# Debian's Python lacks venv until python3-venv is installed; an old or missing Python is reported
# after the system tools, so that one run lists everything there is to install.
need_venv_package=false
python_too_old=false
if [ ! -x "$venv/bin/python" ] && ! python_ok; then
  if "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    need_venv_package=true
  else
    python_too_old=true
  fi
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$need_venv_package" = true ]; then
  apt_list=()
  brew_list=()
  for tool in ${missing[@]+"${missing[@]}"}; do
    read -r -a packages <<<"$(apt_package "$tool")"
    apt_list+=("${packages[@]}")
    brew_list+=("$(brew_package "$tool")")
  done
  [ "$need_venv_package" = true ] && apt_list+=(python3-venv)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt_install "${apt_list[@]}"
  else
    {
      names=(${missing[@]+"${missing[@]}"})
      [ "$need_venv_package" = true ] && names+=(python3-venv)
      echo "error: missing system tools: ${names[*]}"
      echo "Install them, then run the command again:"
      echo "  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y ${apt_list[*]}"
      if [ "${#brew_list[@]}" -gt 0 ]; then
        echo "  macOS:          $(printf 'brew install %s; ' "${brew_list[@]}")"
      fi
    } >&2
    exit 1
  fi
  for tool in ${missing[@]+"${missing[@]}"}; do
    if ! has_tool "$tool"; then
      echo "error: '$tool' is still missing after installing ${apt_list[*]}" >&2
      exit 1
    fi
  done
fi

if [ "$python_too_old" = true ]; then
  echo "error: Python 3.11 or newer is needed as '$python' (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi

# --- Python packages -----------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "Creating the virtual environment in .venv"
  "$python" -m venv "$venv"
fi

stamp="$venv/.installed-lock-hash"
# The editable install maps the packages that exist when it runs: a new package under scripts/ or
# examples/ must trigger a reinstall, so their names are part of the stamp.
project_packages="$(cd "$repo_root" && ls -d scripts/*/__init__.py examples/*/__init__.py 2>/dev/null || true)"
wanted="$( (cat "$repo_root/requirements.lock" "$repo_root/pyproject.toml"; echo "$project_packages") |
  sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  say "Installing the pinned Python packages (requirements.lock)"
  "$venv/bin/python" -m pip install --quiet -r "$repo_root/requirements.lock"
  "$venv/bin/python" -m pip install --quiet --no-deps -e "$repo_root"
  echo "$wanted" >"$stamp"
fi

# --- Node.js packages (test only) ----------------------------------------------------------
if [ "$purpose" = test ]; then
  node_stamp="$repo_root/node_modules/.installed-lock-hash"
  node_wanted="$(sha256sum "$repo_root/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$node_stamp" 2>/dev/null || true)" != "$node_wanted" ]; then
    say "Installing the pinned Node.js packages (package-lock.json)"
    (cd "$repo_root" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$node_wanted" >"$node_stamp"
  fi
fi
