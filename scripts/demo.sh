#!/usr/bin/env bash
# The main job: the Dask "Arrays" tutorial on generated data, end to end.
# Usage: bash scripts/demo.sh [--scale small|tutorial] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release -p ndstream-cli -- demo "${@:---scale=small}"
