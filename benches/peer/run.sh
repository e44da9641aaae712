#!/usr/bin/env bash
# Side-by-side benchmark of ndstream against Dask (the Dask tutorial "Arrays" workloads).
#
# Usage (from anywhere in the checkout):
#   benches/peer/run.sh [--quick] [--runs N] [--data DIR] [--only W1,W3a,...] [--distributed]
#
#   --quick          1/8 sizes (25e6 elements, (720, 1440) fields, chunks 250, 2500 particles,
#                    W2 7000²): the whole script runs in a few minutes.
#   --runs N         runs per side and workload (default 3); the table gives medians.
#   --data DIR       where the data is generated once and kept (default bench-data/peer, or
#                    bench-data/peer-quick with --quick); results go to DIR/out/.
#   --only LIST      comma-separated workload ids or prefixes: W1 W2 W2-full W3a W3b W3c-zarr W3c-h5
#                    W4 W5a W5c (W3 = all W3*, W3c = both W3c).
#   --distributed    also run Dask with distributed.Client(processes=False) (extra column).
#   --python-api     also run the Dask program with `import ndstream as da` (extra column:
#                    ndstream's Python package, built in release mode with maturin into the
#                    peer Python; compared with the CLI's time and with its budget).
#   --baseline REV   also run ndstream built at git revision REV (e.g. the commit before a
#                    change), alternating with the current build: an extra column with its
#                    times and the current time / baseline time. Built once in
#                    target/peer-baseline/REV (a git worktree and its own target dir).
#
# Environment:
#   NDSTREAM_PEER_PYTHON   a Python with numpy, dask[array], distributed, h5py, zarr to use
#                          instead of making the venv target/peer-venv.
#
# Steps: make the venv if missing; `cargo build --release -p ndstream-cli`; generate the data
# (benches/peer/gen_data.py, deterministic, skipped if present); then benches/peer/driver.py runs
# every workload as separate processes (Dask, [Dask distributed,] ndstream, alternating, N times),
# measures wall time and peak RSS with /usr/bin/time -v, checks agreement against a NumPy float64
# reference, and writes the Markdown table to BENCHMARKS.md at the project root (a --quick or
# --only run writes DIR/out/BENCHMARKS.md instead, leaving the full table alone).
# A failing ndstream (or Dask) command does not stop the script: it is shown as
# "failed: <last stderr line>" in the table.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmdline="benches/peer/run.sh $*"
export PYTHONDONTWRITEBYTECODE=1

quick=0 runs=3 data="" only="" distributed=0 baseline="" python_api=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --runs) runs="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --distributed) distributed=1; shift ;;
        --python-api) python_api=1; shift ;;
        --baseline) baseline="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "$data" ]]; then
    data="$root/bench-data/peer$([[ $quick == 1 ]] && echo -quick || true)"
fi

# 1. Python with the peers.
if [[ -n "${NDSTREAM_PEER_PYTHON:-}" ]]; then
    py="$NDSTREAM_PEER_PYTHON"
else
    venv="$root/target/peer-venv"
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import numpy, dask.array, distributed, h5py, zarr' 2>/dev/null; then
        echo "== making $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet numpy 'dask[array]' distributed h5py zarr
    fi
    if [[ $python_api == 1 ]] && ! "$venv/bin/python" -m maturin --version >/dev/null 2>&1; then
        "$venv/bin/pip" install --quiet maturin
    fi
    py="$venv/bin/python"
fi

# 2. /usr/bin/time (GNU time, for peak RSS).
if [[ ! -x /usr/bin/time ]]; then
    echo "== installing GNU time" >&2
    apt-get install -y time >&2 || { apt-get update >&2 && apt-get install -y time >&2; }
fi

# 3. ndstream, release build.
echo "== cargo build --release -p ndstream-cli" >&2
nd="$root/target/release/ndstream"
note=""
if ! (cd "$root" && cargo build --release -p ndstream-cli); then
    # Keep going: ndstream runs that fail show as "failed: ..." in the table.
    if [[ -x "$nd" ]]; then
        note="cargo build --release -p ndstream-cli FAILED; the existing (older) target/release/ndstream was measured"
    else
        note="cargo build --release -p ndstream-cli FAILED and there is no target/release/ndstream"
    fi
    echo "== WARNING: $note" >&2
fi

# 3a. ndstream's Python package, release build, into the peer Python.
if [[ $python_api == 1 ]]; then
    echo "== maturin develop --release (python/) into $py" >&2
    pyenv="$(cd "$(dirname "$py")/.." && pwd)"
    (cd "$root/python" && VIRTUAL_ENV="$pyenv" PATH="$pyenv/bin:$PATH" "$py" -m maturin develop --release --quiet)
fi

# 3b. The baseline build (once per revision).
base_nd=""
if [[ -n "$baseline" ]]; then
    rev=$(cd "$root" && git rev-parse --short "$baseline^{commit}") \
        || { echo "run.sh: --baseline $baseline is not a commit" >&2; exit 2; }
    bdir="$root/target/peer-baseline/$rev"
    if [[ ! -d "$bdir/src" ]]; then
        (cd "$root" && git worktree add --detach "$bdir/src" "$rev" >&2)
    fi
    echo "== cargo build --release -p ndstream-cli at $rev (baseline)" >&2
    (cd "$bdir/src" && CARGO_TARGET_DIR="$bdir/target" cargo build --release -p ndstream-cli)
    base_nd="$bdir/target/release/ndstream"
fi

# 4. The data (once).
"$py" "$here/gen_data.py" "$data" $([[ $quick == 1 ]] && echo --quick)

# 5. The runs and the report.
# A full-size run of every workload is the project's table (BENCHMARKS.md at the root);
# a --quick or --only run writes its table next to its outputs instead of replacing it.
md="$root/BENCHMARKS.md"
if [[ $quick == 1 || -n "$only" ]]; then
    mkdir -p "$data/out"
    md="$data/out/BENCHMARKS.md"
fi
args=(--data "$data" --nd "$nd" --python "$py" --runs "$runs" --md "$md"
      --command "$cmdline" --note "$note")
[[ $quick == 1 ]] && args+=(--quick)
[[ $distributed == 1 ]] && args+=(--distributed)
[[ $python_api == 1 ]] && args+=(--python-api)
[[ -n "$only" ]] && args+=(--only "$only")
[[ -n "$base_nd" ]] && args+=(--baseline "$base_nd" --baseline-label "commit $rev")
"$py" "$here/driver.py" "${args[@]}"
echo "== wrote $md" >&2
