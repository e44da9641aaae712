#!/usr/bin/env bash
# The Python environment the tests use (target/interop-venv): NumPy, h5py,
# hdf5plugin, zarr and netCDF4 as oracles for the Rust interop tests, pytest, maturin and ruff for
# the Python package (python/), dask.distributed for its cluster tests, and
# moto (an S3-compatible server on loopback), boto3 and s3fs for its
# object-storage tests (s3fs pinned to a current release: left free, pip
# meets the newest boto3 by falling back to a 2019 s3fs). Made once, topped up when a package is
# missing; prints the interpreter's path, or nothing when there is no
# python3 (the Python tests are then skipped, with a message).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/interop-venv
py=$venv/bin/python
if ! command -v python3 >/dev/null; then
  echo "ndstream: no python3; the Python tests will be skipped" >&2
  exit 0
fi
if [ ! -x "$py" ]; then
  echo "ndstream: making a Python venv for the tests ($venv)" >&2
  if ! python3 -m venv "$venv" >&2; then
    # Debian/Ubuntu ship venv (ensurepip) separately.
    rm -rf "$venv"
    if command -v apt-get >/dev/null; then
      SUDO=""
      if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
      echo "ndstream: installing python3-venv with apt-get" >&2
      $SUDO apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv python3-pip >/dev/null
    fi
    python3 -m venv "$venv" >&2
  fi
fi
if ! "$py" -c "import numpy, h5py, hdf5plugin, zarr, netCDF4, pytest, maturin, ruff, distributed, moto, flask, boto3, s3fs; assert int(s3fs.__version__.split('.')[0]) >= 2025" 2>/dev/null; then
  echo "ndstream: installing numpy, h5py, hdf5plugin, zarr, netCDF4, pytest, maturin, ruff, dask.distributed, moto, boto3 and s3fs into $venv" >&2
  "$py" -m pip install -q --upgrade pip >&2
  "$py" -m pip install -q numpy h5py hdf5plugin zarr netCDF4 pytest maturin ruff "dask[distributed]" "moto[server]" boto3 "s3fs>=2025.1" >&2
fi
echo "$PWD/$py"
