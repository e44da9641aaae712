#!/usr/bin/env python3
"""Run the peer benchmark (ndstream vs Dask), check agreement, write the Markdown report.

Called by run.sh (which makes the venv, builds ndstream and generates the data); see there
for usage. Every measured run is one process under `/usr/bin/time -v`: its wall time is taken
here around the process, its peak RSS from time's report. Runs alternate Dask, [Dask
distributed,] ndstream, N times per workload; the table gives medians.

Agreement is checked against an independent NumPy float64 reference (cached in DATA/ref/):
reductions within 1e-6 relative, W2 statistically (different generators), stored arrays
byte-for-byte against the source data and against Dask's output.
"""

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np
import zarr

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from gen_data import sizes, w2_size  # noqa: E402

REL_TOL = 1e-6
ND_MEMORY = "256MiB"


# ---------------------------------------------------------------------------------------------
# The workloads


def workloads(data, quick):
    """Every workload: id, description, ndstream arguments (a function of the output stem),
    output suffix (None: result printed), target ratio, ndstream memory budget."""
    s = sizes(quick)
    c, n2 = s["chunk"], w2_size(quick)
    stack = f"stack('{data}/weather-big/*.hdf5:/t2m')"
    half = f"1,{c // 2},{c // 2}"
    ev = ["eval"]
    return [
        dict(id="W1", what="sum, mean, std of random.hdf5:/x (contiguous f4)", target=10,
             suffix=None,
             nd=lambda o: ev + [f"x = open('{data}/random.hdf5:/x'); [x.sum(), x.mean(), x.std()]",
                                "--json"]),
        dict(id="W2", what=f"random.normal(10, 0.1, ({n2}, {n2})).mean(axis=0)[::100]", target=100,
             suffix=None, memory="150MiB",
             nd=lambda o: ev + [f"random.normal(10, 0.1, size=({n2}, {n2}), chunks=(1000, 1000))"
                                ".mean(axis=0)[::100]", "--json"]),
        dict(id="W2-full", what=f"random.normal(10, 0.1, ({n2}, {n2})).mean(axis=0) -> .npy",
             target=10, suffix=".npy", memory="150MiB",
             nd=lambda o: ev + [f"random.normal(10, 0.1, size=({n2}, {n2}), chunks=(1000, 1000))"
                                ".mean(axis=0)", "-o", o]),
        dict(id="W3a", what="stack of 31 /t2m, mean(axis=0) -> .npy", target=5, suffix=".npy",
             nd=lambda o: ev + [f"{stack}.mean(axis=0)", "-o", o]),
        dict(id="W3b", what="x[0] - x.mean(axis=0) -> .npy", target=5, suffix=".npy",
             nd=lambda o: ev + [f"x = {stack}; x[0] - x.mean(axis=0)", "-o", o]),
        dict(id="W3c-zarr", what="x[:, ::2, ::2] -> Zarr v3 zstd:3", target=5, suffix=".zarr",
             nd=lambda o: ev + [f"{stack}[:, ::2, ::2]", "-o", o, "--chunks", half,
                                "--codec", "zstd:3"]),
        dict(id="W3c-h5", what="x[:, ::2, ::2] -> HDF5 (uncompressed)", target=5, suffix=".h5",
             nd=lambda o: ev + [f"{stack}[:, ::2, ::2]", "-o", o + ":/x", "--chunks", half]),
        dict(id="W4", what=f"Lennard-Jones energy, {s['atoms']} particles", target=20, suffix=None,
             nd=lambda o: ev + [f"x = open('{data}/cluster.npy'); d = x[:, None, :] - x[None, :, :]; "
                                "r2 = (d*d).sum(axis=2); s = (1/r2)**3; nansum(4*(s*s - s))/2",
                                "--json"]),
        dict(id="W5a", what="HDF5 stack -> Zarr v3 zstd:3, chunks (1, C, C)", target=2.5,
             suffix=".zarr",
             nd=lambda o: ["convert", f"{data}/weather-big/*.hdf5:/t2m", o, "--chunks", f"1,{c},{c}",
                           "--codec", "zstd:3"]),
        dict(id="W5c", what="mean over axis 0 of the Zarr stack -> .npy", target=3, suffix=".npy",
             nd=lambda o: ev + [f"open('{data}/weather-big.zarr').mean(axis=0)", "-o", o]),
    ]


def inputs(wid, data):
    """The files a workload reads (read once beforehand so every side finds them cached)."""
    if wid == "W1":
        return [f"{data}/random.hdf5"]
    if wid == "W4":
        return [f"{data}/cluster.npy"]
    if wid == "W5c":
        return sorted(glob.glob(f"{data}/weather-big.zarr/**/*", recursive=True))
    if wid.startswith("W3") or wid == "W5a":
        return sorted(glob.glob(f"{data}/weather-big/*.hdf5"))
    return []


def selected(wid, only):
    """Whether --only picks a workload: an exact id, or a prefix such as W3 or W3c."""
    return not only or any(wid == t or (wid.startswith(t) and not wid[len(t)].isdigit()) for t in only)


# ---------------------------------------------------------------------------------------------
# Running and measuring one process


def measure(cmd, timeout, tmpdir):
    """Run cmd under /usr/bin/time -v. Returns dict(ok, wall, rss_mib, stdout, error)."""
    tfile = os.path.join(tmpdir, "time.txt")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(ok=False, error=f"timeout after {timeout} s")
    wall = time.perf_counter() - t0
    rss = None
    with open(tfile) as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss = int(line.rsplit(":", 1)[1]) / 1024
    if p.returncode != 0:
        lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", p.stderr).splitlines() if ln.strip()]
        return dict(ok=False, error=f"exit {p.returncode}: {lines[-1].strip() if lines else '(no message)'}")
    return dict(ok=True, wall=wall, rss_mib=rss, stdout=p.stdout)


# ext4 without a journal (this VM's root file system) avoids reusing an inode
# freed recently: recently_deleted() in fs/ext4/ialloc.c skips an inode freed
# less than 60 s ago, or less than 360 s ago while the inode-table block that
# holds it is dirty. Every file a run creates dirties those blocks, so the
# window is 360 s in practice. Each file created scans past every such inode,
# one buffer lookup each: after the previous run's 2,232 chunk files were
# removed, even 62 s earlier, 13% of ndstream's CPU time in W3c-zarr went to
# that scan. Dask paid the same per file, a smaller share of its longer run.
# Users writing a new store do not pay it. So the outputs of earlier runs are
# not removed between runs: they are moved into out/.trash (a rename frees no
# inode), emptied when the disk runs short and at the end. A run that writes
# a Zarr store starts at least RECENTLY_FREED_S after the last bulk removal,
# also one made by an earlier invocation (recorded in out/.last-bulk-removal).
RECENTLY_FREED_S = 361
BULK_FILES = 100
TRASH_KEEPS_FREE = 6 << 30
_last_bulk_removal = None  # time.time() of the last removal of BULK_FILES or more
_trash = None  # out/.trash once set up by init_trash()


def _entries(path):
    """Files and directories under path."""
    return sum(len(fs) + len(ds) for _, ds, fs in os.walk(path))


def _stamp_path():
    return os.path.join(os.path.dirname(_trash), ".last-bulk-removal")


def _note_bulk_removal():
    global _last_bulk_removal
    _last_bulk_removal = time.time()
    with open(_stamp_path(), "w") as f:
        f.write(f"{_last_bulk_removal}\n")


def init_trash(outdir):
    """Set up out/.trash; empty what an interrupted invocation left there."""
    global _trash, _last_bulk_removal
    _trash = os.path.join(outdir, ".trash")
    try:
        with open(_stamp_path()) as f:
            _last_bulk_removal = float(f.read().strip())
    except (OSError, ValueError):
        pass
    empty_trash()
    os.makedirs(_trash, exist_ok=True)


def empty_trash():
    """Delete everything in the trash (a bulk removal if it held many files)."""
    if _trash is None or not os.path.isdir(_trash):
        return
    files = _entries(_trash)
    shutil.rmtree(_trash)
    os.makedirs(_trash, exist_ok=True)
    if files >= BULK_FILES:
        _note_bulk_removal()


def remove(path):
    """Get an earlier run's output out of the way: a directory of many files
    goes to the trash while the disk has room, anything else is deleted."""
    if os.path.isdir(path):
        files = _entries(path)
        if files >= BULK_FILES and _trash is not None:
            if shutil.disk_usage(_trash).free < TRASH_KEEPS_FREE:
                empty_trash()
            if shutil.disk_usage(_trash).free >= TRASH_KEEPS_FREE:
                os.rename(path, os.path.join(_trash, f"{time.time_ns()}-{os.path.basename(path)}"))
                return
        shutil.rmtree(path)
        if files >= BULK_FILES:
            _note_bulk_removal()
    elif os.path.exists(path):
        os.remove(path)


def wait_out_freed_inodes():
    """Sleep until the inodes of the last bulk removal can be reused (see RECENTLY_FREED_S)."""
    if _last_bulk_removal is not None:
        left = RECENTLY_FREED_S - (time.time() - _last_bulk_removal)
        if left > 0:
            print(f"   (waiting {left:.0f} s for freed inodes to age)", file=sys.stderr, flush=True)
            time.sleep(left)


def warm(paths):
    """Read files once so that they are in the page cache."""
    for p in paths:
        if os.path.isfile(p):
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass


# ---------------------------------------------------------------------------------------------
# Results: parsing and the NumPy float64 reference


def nd_values(stdout):
    """The numbers of `ndstream eval --json` output, flattened in order."""
    def flat(v):
        if isinstance(v, dict):
            return flat(v["data"])
        if isinstance(v, list):
            return [y for x in v for y in flat(x)]
        return [float(v)]
    return flat(json.loads(stdout))


def reference(wid, data, quick):
    """The float64 NumPy reference of a workload (cached under DATA/ref/)."""
    refdir = os.path.join(data, "ref")
    os.makedirs(refdir, exist_ok=True)
    if wid in ("W1", "W4"):
        path = os.path.join(refdir, f"{wid}.json")
        if not os.path.exists(path):
            vals = ref_w1(data) if wid == "W1" else [ref_w4(data)]
            with open(path, "w") as f:
                json.dump(vals, f)
        with open(path) as f:
            return json.load(f)
    if wid in ("W3a", "W3b", "W5c"):
        path = os.path.join(refdir, "mean.npy")
        if not os.path.exists(path):
            acc = None
            for p in sorted(glob.glob(f"{data}/weather-big/*.hdf5")):
                with h5py.File(p, "r") as f:
                    day = f["t2m"][...].astype(np.float64)
                acc = day if acc is None else acc + day
            np.save(path, acc / len(glob.glob(f"{data}/weather-big/*.hdf5")))
        return np.load(path)
    return None


def ref_w1(data):
    """Sum, mean and std (ddof=0) of /x in float64, two passes, block sums added exactly."""
    with h5py.File(os.path.join(data, "random.hdf5"), "r") as f:
        x = f["x"]
        n, b = x.shape[0], 10_000_000
        total = math.fsum(float(np.sum(x[i:i + b], dtype=np.float64)) for i in range(0, n, b))
        mean = total / n
        ss = math.fsum(float(np.sum((x[i:i + b].astype(np.float64) - mean) ** 2))
                       for i in range(0, n, b))
    return [total, mean, math.sqrt(ss / n)]


def ref_w4(data):
    """Lennard-Jones energy in float64, by blocks of rows (diagonal NaNs skipped)."""
    x = np.load(os.path.join(data, "cluster.npy")).astype(np.float64)
    parts = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(0, len(x), 250):
            d = x[i:i + 250, None, :] - x[None, :, :]
            r2 = (d * d).sum(axis=2)
            s = (1.0 / r2) ** 3
            parts.append(float(np.nansum(4.0 * (s * s - s))))
    return math.fsum(parts) / 2


# ---------------------------------------------------------------------------------------------
# Agreement checks: each returns (ok, short text)


def check_scalars(got, ref):
    """Float results within REL_TOL relative of the reference."""
    if len(got) != len(ref):
        return False, f"{len(got)} values, expected {len(ref)}"
    err = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
    return err <= REL_TOL, f"rel err {err:.1e}"


def check_w2(got, quick, step=100):
    """W2's generators differ, so the check is statistical: every column mean of N(10, 0.1)
    over n rows lies within 6 sigma = 6 * 0.1 / sqrt(n) of 10, and there are n/step of them."""
    n = w2_size(quick)
    if len(got) != -(-n // step):
        return False, f"{len(got)} values, expected {-(-n // step)}"
    z = max(abs(g - 10) for g in got) / (0.1 / math.sqrt(n))
    return z <= 6, f"statistical: max {z:.1f} sigma"


def load_array(path):
    """A stored result as a NumPy array (float64 for comparison)."""
    return np.load(path).astype(np.float64)


def check_mean(path, ref):
    """A stored mean over the days, within REL_TOL relative of the float64 mean."""
    a = load_array(path)
    if a.shape != ref.shape:
        return False, f"shape {a.shape}, expected {ref.shape}"
    err = float(np.max(np.abs(a - ref) / np.abs(ref)))
    return err <= REL_TOL, f"rel err {err:.1e}"


def check_anomaly(path, mean, data):
    """x[0] - mean: within REL_TOL of the operands' size, |x0| + |mean| (the forward error
    bound of a subtraction; the result itself can be near 0)."""
    a = load_array(path)
    with h5py.File(sorted(glob.glob(f"{data}/weather-big/*.hdf5"))[0], "r") as f:
        x0 = f["t2m"][...].astype(np.float64)
    if a.shape != x0.shape:
        return False, f"shape {a.shape}, expected {x0.shape}"
    err = float(np.max(np.abs(a - (x0 - mean)) / (np.abs(x0) + np.abs(mean))))
    return err <= REL_TOL, f"rel err {err:.1e}"


def stored_days(path):
    """(shape, chunks, codec, a function day -> float32 (H, W) array) of a stored stack;
    codec is "zstd:LEVEL" (Zarr), "none" or the HDF5 filter name."""
    if path.endswith(".zarr"):
        z = zarr.open_array(path, mode="r")
        with open(os.path.join(path, "zarr.json")) as f:
            codecs = json.load(f)["codecs"]
        names = [f"{c['name']}:{c.get('configuration', {}).get('level', '')}" for c in codecs
                 if c["name"] not in ("bytes", "transpose")]
        return z.shape, z.chunks, ",".join(names) or "none", lambda d: np.asarray(z[d])
    f = h5py.File(path, "r")
    x = f["x"]
    return x.shape, x.chunks, x.compression or "none", lambda d: x[d]


def check_stack(path, data, stride, chunks, codec, dask_path):
    """A stored stack byte-for-byte against the source (strided) and against Dask's output;
    its chunk shape and codec as asked."""
    shape, got_chunks, got_codec, day = stored_days(path)
    srcs = sorted(glob.glob(f"{data}/weather-big/*.hdf5"))
    peer = stored_days(dask_path) if dask_path and os.path.exists(dask_path) else None
    notes = []
    if tuple(got_chunks) != tuple(chunks):
        notes.append(f"chunks {tuple(got_chunks)} != {tuple(chunks)}")
    if got_codec != codec:
        notes.append(f"codec {got_codec} != {codec}")
    same_src = same_peer = True
    for d, p in enumerate(srcs):
        with h5py.File(p, "r") as f:
            src = f["t2m"][::stride, ::stride]
        if d == 0 and shape != (len(srcs),) + src.shape:
            return False, f"shape {shape}, expected {(len(srcs),) + src.shape}"
        got = day(d)
        same_src &= got.dtype == src.dtype and got.tobytes() == src.tobytes()
        if peer is not None:
            same_peer &= got.tobytes() == peer[3](d).tobytes()
    text = "bytes = source" if same_src else "bytes DIFFER from source"
    if peer is not None:
        text += ", = Dask" if same_peer else ", DIFFER from Dask"
    ok = same_src and (peer is None or same_peer) and not notes
    return ok, "; ".join([text] + notes)


def check(w, side, run, data, quick, out):
    """Agreement of one side's last successful run of workload w."""
    wid = w["id"]
    c = sizes(quick)["chunk"]
    if wid == "W2":
        return check_w2(run["values"], quick)
    if wid == "W2-full":
        return check_w2([float(v) for v in load_array(out).ravel()], quick, step=1)
    if wid in ("W1", "W4"):
        return check_scalars(run["values"], reference(wid, data, quick))
    if wid in ("W3a", "W5c"):
        return check_mean(out, reference(wid, data, quick))
    if wid == "W3b":
        return check_anomaly(out, reference(wid, data, quick), data)
    dask_out = os.path.join(os.path.dirname(out), f"{wid}-dask{w['suffix']}")
    peer = dask_out if side != "dask" else None
    if wid == "W3c-zarr":
        return check_stack(out, data, 2, (1, c // 2, c // 2), "zstd:3", peer)
    if wid == "W3c-h5":
        return check_stack(out, data, 2, (1, c // 2, c // 2), "none", peer)
    if wid == "W5a":
        return check_stack(out, data, 1, (1, c, c), "zstd:3", peer)
    return False, "no check"


# ---------------------------------------------------------------------------------------------
# The report


def fmt_s(x):
    return "—" if x is None else (f"{x:.3f}" if x < 1 else f"{x:.2f}")


def fmt_ratio(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_mib(x):
    return "—" if x is None else f"{x:.0f}"


def summary(runs):
    """Medians over a side's successful runs, or the failure."""
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return dict(failed=runs[-1]["error"] if runs else "not run")
    med = lambda k: statistics.median(r[k] for r in ok) if all(r.get(k) is not None for r in ok) else None
    return dict(wall=med("wall"), rss=med("rss_mib"), compute=med("compute"), n=len(ok))


def cell_dask(s):
    if "failed" in s:
        return f"failed: {s['failed']}"
    return f"{fmt_s(s['compute'])} / {fmt_s(s['wall'])} s, {fmt_mib(s['rss'])} MiB"


def cell_baseline(b, nd, d):
    """The baseline binary's time and RSS, its ratio to Dask, and ndstream's time over it."""
    if "failed" in b:
        return f"failed: {b['failed']}"
    cell = f"{fmt_s(b['wall'])} s, {fmt_mib(b['rss'])} MiB"
    if "failed" not in d:
        cell += f"; {fmt_ratio(d['compute'] / b['wall'])}×"
    if "failed" not in nd:
        cell += f"; {nd['wall'] / b['wall']:.2f}"
    return cell


def machine():
    """nproc, CPU model, memory, load."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return dict(nproc=os.cpu_count(), cpu=model, mem=mem, load=os.getloadavg())


def versions_nd(nd):
    """The first line of `nd --version`, or ""."""
    try:
        p = subprocess.run([nd, "--version"], capture_output=True, text=True)
        return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else ""
    except OSError:
        return ""


def versions(nd):
    import dask
    import distributed
    v = versions_nd(nd)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "engine", "formats", "tools",
                                "src", "Cargo.toml", "Cargo.lock"]).returncode != 0
        commit += " + uncommitted changes" if dirty else ""
    except OSError:
        commit = "?"
    return (f"{v or 'ndstream ?'} (commit {commit}); Python {platform.python_version()}, "
            f"numpy {np.__version__}, dask {dask.__version__}, distributed {distributed.__version__}, "
            f"h5py {h5py.__version__}, zarr {zarr.__version__}")


def report(rows, a, m_start, m_end, started, vers):
    """The Markdown report."""
    dist = a.distributed
    head = ["id", "workload", "Dask threads: compute / process, RSS"]
    if dist:
        head.append("Dask distributed: compute / process, RSS")
    head += [f"ndstream: process, RSS (budget)", "ratio", "target", "met?"]
    if a.python_api:
        head += ["ndstream Python: compute / process, RSS; compute / CLI process", "Python met?"]
    if a.baseline:
        head.append("baseline ndstream: process, RSS; ratio; ndstream time / baseline time")
    head.append("agreement")
    lines = [
        "# ndstream vs Dask: side-by-side peer benchmark",
        "",
        "Generated by `benches/peer/run.sh`; see `benches/peer/` and `/work/shared/BENCHMARKS.md`",
        "for the workloads (the Dask tutorial \"Arrays\").",
        "",
    ]
    if a.note:
        lines += [f"**Warning: {a.note}.**", ""]
    lines += [
        f"- Date: {started:%Y-%m-%d %H:%M} (UTC)",
        f"- Machine: {m_start['nproc']} CPUs, {m_start['cpu']}, {m_start['mem']} RAM; "
        f"load average at start {m_start['load'][0]:.2f}, at end {m_end['load'][0]:.2f}",
        f"- Versions: {vers}",
        f"- Command: `{a.command}`",
        f"- Data: `{a.data}` ({'quick: 1/8 sizes' if a.quick else 'full sizes'}), in the page cache;"
        f" median of {a.runs} runs per side, runs alternating Dask / "
        f"{'Dask distributed / ' if dist else ''}ndstream"
        f"{' / baseline ndstream (these two swapping places every other run)' if a.baseline else ''}.",
    ]
    if a.baseline:
        lines.append(f"- Baseline: `{a.baseline}` ({a.baseline_version}), the same commands and budgets.")
    lines += [
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 5 - bool(a.baseline) - 2 * a.python_api)
                       + ["---"] * 2 + ["---:", "---"] * a.python_api
                       + ["---:"] * bool(a.baseline) + ["---"]) + "|",
    ]
    for r in rows:
        d, nd = r["dask"], r["nd"]
        cells = [r["id"], r["what"], cell_dask(d)]
        if dist:
            cells.append(cell_dask(r["dist"]))
        budget = r["budget"]
        if "failed" in nd:
            cells += [f"failed: {nd['failed']}", "—", f"≥ {r['target']}×", "no"]
        else:
            cells.append(f"{fmt_s(nd['wall'])} s, {fmt_mib(nd['rss'])} MiB ({budget})")
            if "failed" in d:
                cells += ["—", f"≥ {r['target']}×", "no Dask figure"]
            else:
                ratio = d["compute"] / nd["wall"]
                whole = d["wall"] / nd["wall"]
                cells.append(f"{fmt_ratio(ratio)}× ({fmt_ratio(whole)}×)")
                cells.append(f"≥ {r['target']}×")
                why = []
                if ratio < r["target"]:
                    why.append("ratio")
                if nd["rss"] is not None and nd["rss"] > parse_mib(budget):
                    why.append("RSS")
                if not r["agree"].get("nd", (False,))[0]:
                    why.append("agreement")
                cells.append("yes" if not why else "no (" + ", ".join(why) + ")")
        if a.python_api:
            cells += list(cell_py(r["py"], nd, budget, a.py_base))
        if a.baseline:
            cells.append(cell_baseline(r["base"], nd, d))
        agree = []
        for side, label in (("nd", "ndstream"), ("py", "ndstream Python"), ("dask", "Dask"),
                            ("dist", "distributed"), ("base", "baseline")):
            if side in r["agree"]:
                ok, text = r["agree"][side]
                agree.append(f"{label} {'✓' if ok else '✗'} {text}")
        cells.append("; ".join(agree) or "—")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Reading the table:",
        "- Dask times: *compute* is measured inside the Python process (imports, file opening",
        "  and Client start-up excluded, as in the tutorial); *process* is the whole process,",
        "  imports included. ndstream's time is always the whole `ndstream` process.",
        "- ratio = Dask threaded compute time / ndstream process time (the conservative figure,",
        "  which the target is judged on); in parentheses, process time / process time.",
        "- RSS is the kernel's peak resident set (`/usr/bin/time -v`) of each process, MiB.",
        f"- met? = ratio ≥ target, ndstream peak RSS ≤ its `--memory` budget, and agreement.",
        "- Agreement: W1 and W4 within 1e-6 relative of a NumPy float64 reference (two-pass,",
        "  exactly added block sums); W3a/W5c every element within 1e-6 relative of the float64",
        "  mean; W3b every element within 1e-6 of |x0| + |mean| (a subtraction's error bound);",
        "  W2/W2-full statistically (the generators differ): every column mean within 6σ of 10;",
        "  W3c/W5a the stored array decoded and compared byte-for-byte with the source data and",
        "  with Dask's output (chunk shape and codec checked too).",
        "- W2 and W2-full: ndstream is allowed 150 MiB; the targets are 100× with the `[::100]`",
        "  slice (pushed into the generator) and 10× for all 20,000 column means (stored to .npy).",
        "- W3a, W3b and W5c: both sides store the (H, W) result to .npy, inside the time.",
        "- Every run starts with no dirty pages (`sync` first). Earlier runs' Zarr stores are",
        "  moved aside, not deleted, until the disk runs short or the bench ends, and a run",
        "  that writes a Zarr store starts at least 361 s after any bulk removal: without a",
        "  journal, ext4 scans past every inode freed in the last 60-360 s on each file it",
        "  creates (`recently_deleted()`), a cost a new store does not pay.",
        "- W4 uses the tutorial's cluster, `make_cluster(int(7e3), radius=500)` (seed 1981); its",
        "  energy at 7,000 particles is −0.21282893668845…",
        "- Raw per-run figures: `DATA/out/results.json`.",
    ]
    if a.python_api:
        lines += [
            "- ndstream Python: the Dask program (`dask_workloads.py`) run with `import ndstream as",
            "  da` and the same budget (`ndstream.config.set(memory=...)`); its compute time is",
            "  measured inside the process as Dask's is, and compared with the CLI's whole",
            "  process time (target: within 10%). Its RSS target is the budget plus what the",
            "  interpreter holds after `import numpy, h5py, ndstream`: "
            f"{fmt_mib(a.py_base)} MiB, measured in this run.",
        ]
    lines += [
        "",
        f"The ndstream commands (DATA = `{a.data}`; the Dask side is",
        "`benches/peer/dask_workloads.py WORKLOAD DATA OUT`):",
        "",
        "```",
    ]
    lines += [f"{r['id']}: {r['cmd']}" for r in rows]
    lines += ["```", ""]
    return "\n".join(lines)


def python_baseline(python, tmpdir):
    """Peak RSS (MiB) of the Python side's process doing nothing but its imports (numpy, h5py,
    ndstream): what the interpreter itself holds, on top of which ndstream's budget counts."""
    r = measure([python, "-c", "import numpy, h5py, ndstream"], 120, tmpdir)
    return r["rss_mib"] if r["ok"] else None


def cell_py(py, nd, budget, base):
    """ndstream through Python: compute / process time and RSS; its compute time over the CLI's
    process time (target ≤ 1.10); RSS over the budget plus the interpreter's imports."""
    if "failed" in py:
        return f"failed: {py['failed']}", "no"
    cell = f"{fmt_s(py['compute'])} / {fmt_s(py['wall'])} s, {fmt_mib(py['rss'])} MiB"
    why = []
    if "failed" not in nd:
        r = py["compute"] / nd["wall"]
        cell += f"; {r:.2f} of CLI"
        if r > 1.10:
            why.append("time")
    if base is not None and py["rss"] is not None and py["rss"] > parse_mib(budget) + base:
        why.append("RSS")
    return cell, "yes" if not why else "no (" + ", ".join(why) + ")"


def sh_quote(arg):
    """A shell word, in double quotes when it holds single quotes (the expressions do)."""
    if "'" in arg and not re.search(r'["$`\\!]', arg):
        return f'"{arg}"'
    return shlex.quote(arg)


def parse_mib(s):
    return float(s.replace("MiB", ""))


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--nd", required=True, help="the ndstream binary")
    p.add_argument("--python", default=sys.executable, help="Python for the Dask side")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated ids or prefixes (W1,W3,W5a)")
    p.add_argument("--distributed", action="store_true", help="also run Dask distributed")
    p.add_argument("--baseline", default="",
                   help="a second ndstream binary (e.g. an older commit's), run alternately with --nd")
    p.add_argument("--baseline-label", default="", help="what the baseline is, for the report")
    p.add_argument("--md", required=True, help="the Markdown report to write")
    p.add_argument("--command", default="", help="the command line, for the report")
    p.add_argument("--note", default="", help="a warning to print at the top of the report")
    p.add_argument("--timeout", type=int, default=None, help="seconds per process")
    p.add_argument("--python-api", action="store_true",
                   help="also run the Dask program with `import ndstream as da` (ndstream's Python "
                        "package, installed in --python)")
    a = p.parse_args()
    a.baseline_version = ", ".join(filter(None, [versions_nd(a.baseline), a.baseline_label])) \
        if a.baseline else ""
    a.data = os.path.abspath(a.data)
    timeout = a.timeout or (600 if a.quick else 3600)
    only = [t.strip() for t in a.only.split(",") if t.strip()]
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = os.path.join(a.data, "out")
    os.makedirs(outdir, exist_ok=True)
    init_trash(outdir)
    started = datetime.datetime.now(datetime.timezone.utc)
    m_start = machine()
    ids = [w["id"] for w in workloads(a.data, a.quick)]
    if not any(selected(i, only) for i in ids):
        sys.exit(f"--only {a.only}: no such workload (there are {', '.join(ids)})")
    sides = (["dask"] + (["dist"] if a.distributed else []) + ["nd"] + (["py"] if a.python_api else [])
             + (["base"] if a.baseline else []))
    a.py_base = python_baseline(a.python, outdir) if a.python_api else None
    rows, raw = [], []
    for w in workloads(a.data, a.quick):
        wid = w["id"]
        if not selected(wid, only):
            continue
        budget = w.get("memory", ND_MEMORY)
        print(f"== {wid}: {w['what']}", file=sys.stderr, flush=True)
        warm(inputs(wid, a.data))
        runs = {s: [] for s in sides}
        outs = {s: os.path.join(outdir, f"{wid}-{s}{w['suffix'] or ''}") for s in sides}
        for i in range(a.runs):
            # Both sides' previous outputs go first, together (to the trash, see
            # RECENTLY_FREED_S), so that one wait at most covers the round.
            for side in sides:
                remove(outs[side])
            if w["suffix"] == ".zarr":
                wait_out_freed_inodes()
            # The run right after Dask's pays for the memory Dask gave back
            # (measurable on runs of tens of ms): ndstream and the baseline
            # take turns in that place.
            order = list(sides)
            if "base" in order and i % 2 == 1:
                k, j = order.index("nd"), order.index("base")
                order[k], order[j] = order[j], order[k]
            for side in order:
                if runs[side] and not runs[side][-1]["ok"]:
                    continue  # failed once: not retried
                out = outs[side]
                remove(out)
                # Flush the previous runs' writes (and the removals) to disk first, so that
                # their writeback does not land in this run's time: every run, on either
                # side, starts with no dirty pages.
                os.sync()
                if side in ("nd", "base"):
                    cmd = [a.nd if side == "nd" else a.baseline, "-q"] + w["nd"](out) + ["--memory", budget]
                else:
                    cmd = [a.python, os.path.join(here, "dask_workloads.py"), wid, a.data, out]
                    cmd += ["--quick"] * a.quick + ["--distributed"] * (side == "dist")
                    if side == "py":
                        cmd += ["--module", "ndstream", "--memory", budget]
                r = measure(cmd, timeout, outdir)
                if r["ok"]:
                    try:
                        if side in ("nd", "base"):
                            r["values"] = nd_values(r["stdout"]) if w["suffix"] is None else None
                        else:
                            j = json.loads(r["stdout"].strip().splitlines()[-1])
                            r["compute"] = j["seconds"]
                            v = j["result"]
                            r["values"] = (v if isinstance(v, list) else [v]) if w["suffix"] is None else None
                    except (ValueError, KeyError, IndexError) as e:
                        r = dict(ok=False, error=f"unreadable output ({e}): {r['stdout'][:200]!r}")
                r.pop("stdout", None)
                runs[side].append(r)
                shown = (f"{r['wall']:.2f} s, {r['rss_mib']:.0f} MiB"
                         + (f" (compute {r['compute']:.2f} s)" if "compute" in r else "")
                         if r["ok"] else r["error"])
                print(f"   run {i + 1} {side:4s}: {shown}", file=sys.stderr, flush=True)
        agree = {}
        for side in sides:
            ok_runs = [r for r in runs[side] if r["ok"]]
            if ok_runs:
                try:
                    agree[side] = check(w, side, ok_runs[-1], a.data, a.quick, outs[side])
                except Exception as e:  # a broken output is a disagreement, not a crash
                    agree[side] = (False, f"check failed: {type(e).__name__}: {e}")
                print(f"   agreement {side}: {agree[side]}", file=sys.stderr, flush=True)
        cmd = " ".join(map(sh_quote, ["ndstream", "-q"] + w["nd"](outs["nd"]) + ["--memory", budget]))
        row = dict(id=wid, what=w["what"], target=w["target"], budget=budget, agree=agree,
                   cmd=cmd.replace(a.data, "DATA"),
                   **{s: summary(runs[s]) for s in sides})
        rows.append(row)
        raw.append(dict(id=wid, runs=runs, agree=agree))
    m_end = machine()
    empty_trash()
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    md = report(rows, a, m_start, m_end, started, versions(a.nd))
    with open(a.md, "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
