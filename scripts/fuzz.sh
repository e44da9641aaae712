#!/usr/bin/env bash
# Coverage-guided fuzzing of the readers, the path syntax, the expression
# language and program JSON (fuzz/, cargo-fuzz + libFuzzer with
# AddressSanitizer).
#
#   bash scripts/fuzz.sh [SECONDS_EACH] [TARGET...]
#
# Runs each target (default: all) for SECONDS_EACH (default 60) on all
# cores, starting from the committed corpus (fuzz/corpus/TARGET) and a
# working copy that grows (fuzz/corpus-work/TARGET, not committed). A crash
# (a panic or a memory error), a timeout or running out of memory fails
# the script; the input is
# left in fuzz/artifacts/TARGET/, and belongs in fuzz/regressions/TARGET/
# once fixed (the test suite replays both folders). FUZZ_MERGE=1 folds
# what a run found back into the committed corpus, minimised.
#
# cargo-fuzz needs nightly flags (-Zsanitizer); on the stable toolchain
# RUSTC_BOOTSTRAP=1 allows them. cargo-fuzz is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never
# Leaks are not memory errors in Rust, and libhdf5 keeps its caches until
# exit; -detect_leaks=0 alone does not reach the processes of -fork mode.
# A failed huge malloc returns NULL as glibc does (libhdf5 then reports an
# error; seen: a corrupt entry length asking for 1 TB) instead of aborting.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
secs=${1:-60}
shift || true
all=(npy_header zarr_meta hdf5_open hdf5_codec path_syntax expr netcdf3 program)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
jobs=${FUZZ_JOBS:-$(nproc)}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "ndstream: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || python3 fuzz/seeds.py "$t"
done

cargo fuzz build -O

status=0
for t in "${targets[@]}"; do
  work="fuzz/corpus-work/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  echo "ndstream: fuzzing $t for ${secs}s on $jobs job(s)" >&2
  start=$(date +%s)
  # -fork keeps going on every core; any crash, timeout or OOM still fails the run.
  if ! cargo fuzz run -O "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -max_len=65536 \
      -detect_leaks=0 -fork="$jobs" -ignore_crashes=0 -ignore_timeouts=0 -ignore_ooms=0 \
      -print_final_stats=1 > "fuzz/artifacts/$t/log" 2>&1; then
    status=1
    echo "ndstream: $t FAILED; its input is in fuzz/artifacts/$t/ (log: fuzz/artifacts/$t/log)" >&2
    grep -E "ERROR|panicked|SUMMARY|Test unit written" "fuzz/artifacts/$t/log" | head -n 20 >&2 || true
  fi
  end=$(date +%s)
  execs=$(grep -Eo "stat::number_of_executed_units: *[0-9]+|exec/s: [0-9]+" "fuzz/artifacts/$t/log" | tail -n 1 || true)
  echo "ndstream: $t ran $((end - start))s x $jobs job(s) ($execs); corpus $(ls "$work" | wc -l) inputs" >&2
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    cargo fuzz cmin -O "$t" "$work" -- -detect_leaks=0 -rss_limit_mb=3072 >/dev/null 2>&1 || true
    rm -rf "fuzz/corpus/$t" && cp -r "$work" "fuzz/corpus/$t"
  fi
done
exit $status
