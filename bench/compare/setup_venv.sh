#!/usr/bin/env bash
# Creates or updates the Django + OpenCV comparison peer's virtualenv, bench/compare/.venv,
# and prints its python's path on stdout (all other output goes to stderr).
#
#   bench/compare/setup_venv.sh            # e.g. py=$(bench/compare/setup_venv.sh)
#   PYTHON=/path/to/python3 bench/compare/setup_venv.sh
#
# Idempotent and cheap when nothing changed: pip runs only when the venv is new or
# requirements.txt differs from the copy hashed into the venv's stamp file. Needs a
# Python >= 3.11 with the venv and ensurepip modules (Debian: python3-venv) and PyPI
# access the first time (about 170 MB of wheels, 310 MB installed; binary wheels only,
# so a platform without an OpenCV wheel fails fast instead of compiling OpenCV for hours).
# Concurrent runs (the harness and run.sh) are serialized with flock on the venv dir.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/errtrap.sh"

here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

# Prints the first candidate that is Python >= 3.11 with venv and ensurepip.
pick_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

mkdir -p "$venv"
exec 9<"$venv"
flock 9

# A venv interrupted while being created has a python but no pip: create it again
# (without --clear, so the lock on the directory stays valid).
if ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
  if ! python=$(pick_python); then
    echo "setup_venv.sh: need Python >= 3.11 with venv and ensurepip (set PYTHON=...)" >&2
    exit 1
  fi
  echo "setup_venv.sh: creating $venv with $python" >&2
  "$python" -m venv "$venv" >&2
  rm -f "$stamp"
fi

want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup_venv.sh: installing $requirements" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
    --only-binary=:all: -r "$requirements" >&2
  echo "$want" >"$stamp"
fi

echo "$venv/bin/python"
