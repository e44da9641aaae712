#!/usr/bin/env bash
# The test command: installs prerequisites if missing, prepares a Python
# with numpy/h5py/zarr/pytest/maturin (scripts/pyenv.sh), runs every test:
# the Rust workspace, then the Python package's pytest suite against a
# fresh build of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=${NDSTREAM_PYTHON:-$(bash scripts/pyenv.sh)}
if [ -n "$py" ]; then export NDSTREAM_PYTHON="$py"; fi
start=$SECONDS
cargo test --workspace
echo "ndstream: the Rust tests took $((SECONDS - start))s" >&2
if [ -z "$py" ]; then
  echo "ndstream: no Python; the Python package's tests were skipped" >&2
  exit 0
fi
# Build the extension into the venv (editable: python/ndstream is imported
# from the source tree) and run its tests.
venv=$(dirname "$(dirname "$py")")
start=$SECONDS
(cd python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --quiet)
echo "ndstream: building the Python extension took $((SECONDS - start))s" >&2
"$py" -m pytest python/tests -q -p no:cacheprovider
