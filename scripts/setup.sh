#!/usr/bin/env bash
# Install what building ndstream needs and a fresh machine may lack:
# libhdf5 (for the default `hdf5` feature) and pkg-config.
# On Debian/Ubuntu this uses apt-get (as root, or with sudo). Elsewhere,
# install HDF5 >= 1.10 with its headers yourself (e.g. `brew install hdf5`,
# `dnf install hdf5-devel`), or build without HDF5:
#   cargo build -p ndstream-cli --no-default-features --features object-store
set -euo pipefail
have_hdf5() {
  pkg-config --exists hdf5 2>/dev/null || [ -f /usr/include/hdf5/serial/hdf5.h ] || [ -f /usr/include/hdf5.h ]
}
if ! have_hdf5 || ! command -v pkg-config >/dev/null; then
  if command -v apt-get >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    echo "ndstream: installing libhdf5-dev and pkg-config with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libhdf5-dev pkg-config >/dev/null
  else
    echo "ndstream: libhdf5 (>= 1.10, with headers) and pkg-config are needed for the default build." >&2
    echo "Install them with your package manager, or build with --no-default-features (no HDF5)." >&2
    exit 2
  fi
fi
