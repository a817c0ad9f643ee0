#!/usr/bin/env bash
# Installs Flywheel into a new virtualenv exactly as the image does: the wheel built from this
# tree, and its dependencies at the versions uv.lock names (with their hashes). The Dockerfile
# runs it, and tests/test_image.py runs it into a folder outside the repo to prove the result.
#   usage: deploy/install-locked.sh VENV_DIR   (needs uv on PATH or in $UV)
set -euo pipefail
target="$1"
uv="${UV:-uv}"
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$uv" build --project "$src" --wheel --out-dir "$work" --quiet
"$uv" export --project "$src" --frozen --no-default-groups --no-emit-project --no-header \
    --format requirements-txt --output-file "$work/requirements.txt" --quiet
python3 -m venv "$target"
"$target/bin/pip" install --quiet --require-hashes -r "$work/requirements.txt"
"$target/bin/pip" install --quiet --no-deps "$work"/*.whl
