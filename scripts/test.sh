#!/usr/bin/env bash
# The test command: installs prerequisites if missing, prepares a Python
# with numpy/h5py/zarr for the interop tests when possible, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${NDSTREAM_PYTHON:-}" ]; then
  py=target/interop-venv/bin/python
  if [ ! -x "$py" ] && command -v python3 >/dev/null; then
    echo "ndstream: making a Python venv for the interop tests (numpy, h5py, zarr)" >&2
    (python3 -m venv target/interop-venv && target/interop-venv/bin/pip install -q numpy h5py zarr) \
      || echo "ndstream: no interop venv; the Python interop tests will be skipped" >&2
  fi
  if [ -x "$py" ]; then export NDSTREAM_PYTHON="$PWD/$py"; fi
fi
cargo test --workspace
