#!/usr/bin/env bash
# Build backendai_hub_labextension's wheel with the labextension prebuilt (host side: Node + jlpm).
#   bash labextension/build.sh OUT_DIR     the frontend's unit tests (jest), then the wheel
#   bash labextension/build.sh --test      the frontend's unit tests only (tests/integration runs this)
# Env:
#   LABEXT_VENV   host virtualenv with jupyterlab and the hatch builders (default .venv-labext at the
#                 repository root; created when missing)
#   LABEXT_CACHE  directory of wheels built before, keyed on the sources' hash (default: none)
# Prints the wheel's path. node_modules/, lib/ and the built labextension stay out of git.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:?usage: build.sh OUT_DIR | --test}"
test_only=0
if [[ "$out" == "--test" ]]; then
  test_only=1
else
  mkdir -p "$out"
  out="$(cd "$out" && pwd)"
fi
venv="${LABEXT_VENV:-$root/.venv-labext}"
python="${PYTHON:-python3}"
log() { printf '[labextension] %s\n' "$*" >&2; }

# the sources that make the wheel (tracked and untracked files, not what is ignored)
src_hash="$(cd "$here" && { git ls-files -co --exclude-standard . 2>/dev/null || find . -type f; } \
  | LC_ALL=C sort | while read -r f; do [[ -f "$f" ]] && { echo "$f"; cat "$f"; }; done | sha256sum | cut -c1-16)"
if [[ -n "${LABEXT_CACHE:-}" && "$test_only" == 0 ]]; then
  cached="$(ls "$LABEXT_CACHE/$src_hash"/*.whl 2>/dev/null | head -n1 || true)"
  if [[ -n "$cached" ]]; then
    cp "$cached" "$out/"
    echo "$out/$(basename "$cached")"
    exit 0
  fi
fi

command -v node >/dev/null || { log "error: node is missing (Node.js >= 18 builds the labextension)"; exit 1; }
if [[ ! -x "$venv/bin/jlpm" ]]; then
  log "creating $venv (jupyterlab, hatchling, hatch-jupyter-builder) ..."
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "jupyterlab>=4.4,<5" "hatchling>=1.5" \
    "hatch-jupyter-builder>=0.9" "hatch-nodejs-version>=0.3.2"
fi
export PATH="$venv/bin:$PATH"
cd "$here"
log "jlpm install (yarn.lock) ..."
YARN_ENABLE_IMMUTABLE_INSTALLS="$([[ -s yarn.lock ]] && echo true || echo false)" jlpm install >&2
# the frontend's unit tests (src/__tests__, jest in jsdom): no wheel from sources that fail them
log "jlpm test (jest) ..."
jlpm test --ci >&2
[[ "$test_only" == 1 ]] && exit 0
log "jlpm build:prod ..."
jlpm build:prod >&2
rm -rf dist
"$venv/bin/python" -m pip wheel -q --no-build-isolation --no-deps --disable-pip-version-check -w dist . >&2
wheel="$(ls dist/*.whl)"
cp "$wheel" "$out/"
if [[ -n "${LABEXT_CACHE:-}" ]]; then
  mkdir -p "$LABEXT_CACHE/$src_hash"
  cp "$wheel" "$LABEXT_CACHE/$src_hash/"
fi
rm -rf dist
echo "$out/$(basename "$wheel")"
