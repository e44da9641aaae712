//! The sink lifecycle under faults: what an overwrite, a second writer, a
//! full disk, a reader during a swap and a link inside a store may and may
//! not change. Every case checks the bytes of everything that existed
//! before (a snapshot of the directory tree) besides the result itself.
//!
//! The full-disk cases mount a 2 MiB tmpfs under a temporary directory,
//! which needs root; elsewhere they print why they are skipped. Killing a
//! writer at random moments needs a process to kill: that is in the CLI's
//! tests (`tools/tests/faults.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndstream_engine::{AxisSel, Block, ChunkSink, DType, Error};
use ndstream_formats::{
    create_sink, info, open_source, Codec, SinkSpec, StoreInfo, WriteMode, ZarrVersion,
};

use crate::conformance::select;

/// Every entry below `dir`: a file's length and hash (of its bytes), or
/// a link's target.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    use std::hash::{Hash, Hasher};
    let digest = |bytes: &[u8]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        (bytes.len() as u64, h.finish())
    };
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                let to = std::fs::read_link(e.path()).unwrap();
                out.insert(e.path(), digest(to.display().to_string().as_bytes()));
            } else if t.is_dir() {
                out.insert(e.path(), (0, 0));
                stack.push(e.path());
            } else {
                out.insert(e.path(), digest(&std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// `tree` without ndstream's temporaries (a new output being written beside the old).
fn tree_without_temporaries(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut t = tree(dir);
    t.retain(|p, _| !p.display().to_string().contains(".ndstream-new-"));
    t
}

fn temporaries(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_keys()
        .filter(|p| p.display().to_string().contains(".ndstream-"))
        .collect()
}

/// Incompressible f64 values (a xorshift stream), different for each seed.
fn noise(shape: &[u64], seed: u64) -> Block {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
    let a = ArrayD::from_shape_simple_fn(IxDyn(&dims), || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 20) as f64
    });
    Block::from(a)
}

fn region(data: &Block, grid: &ndstream_engine::ChunkGrid, idx: &[u64]) -> Block {
    let sel: Vec<AxisSel> = grid
        .chunk_region(idx)
        .into_iter()
        .map(AxisSel::range)
        .collect();
    select(data, &sel)
}

/// Write the chunks `which` picks (and `is_done` does not skip), in order.
fn write(sink: &dyn ChunkSink, data: &Block, which: impl Fn(u64) -> bool) -> Result<(), Error> {
    let grid = sink.grid().clone();
    for n in (0..grid.num_chunks()).filter(|&n| which(n)) {
        let idx = grid.unravel(n);
        if !sink.is_done(&idx) {
            sink.write_chunk(&idx, &region(data, &grid, &idx))?;
        }
    }
    Ok(())
}

fn store(path: &str, spec: &SinkSpec, data: &Block) {
    let sink = create_sink(path, spec).unwrap_or_else(|e| panic!("{path}: {e}"));
    write(sink.as_ref(), data, |_| true).unwrap();
    sink.finish().unwrap();
}

/// True if `path` reads back exactly as `data` (bit for bit).
fn reads_as(path: &str, data: &Block) -> bool {
    let src = open_source(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let grid = src.grid().clone();
    (0..grid.num_chunks()).all(|n| {
        let idx = grid.unravel(n);
        let got = src
            .read_chunk(&idx)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let want = region(data, &grid, &idx);
        let bits = |b: &Block| -> Vec<u64> { b.to_f64_vec().iter().map(|v| v.to_bits()).collect() };
        bits(&got) == bits(&want)
    })
}

fn incomplete(path: &str) -> bool {
    match info(path).unwrap_or_else(|e| panic!("{path}: {e}")) {
        StoreInfo::Array(a) => a.incomplete,
        other => panic!("{path}: not an array: {other:?}"),
    }
}

fn expect_in_use(r: Result<std::sync::Arc<dyn ChunkSink>, Error>, what: &str) {
    match r {
        Err(e @ Error::Sink { .. }) => {
            assert!(
                e.to_string().contains("in use by another process"),
                "{what}: {e}"
            )
        }
        Err(e) => panic!("{what}: expected an in-use error, got {e}"),
        Ok(_) => panic!("{what}: a second writer was let in"),
    }
}

/// One output format under test.
struct Case {
    name: &'static str,
    /// The path of the output inside `dir` for a spec's shape.
    path: fn(&Path, &[u64]) -> String,
    spec: fn() -> SinkSpec,
    /// Set up what the output lives among (sibling arrays, other datasets).
    setup: fn(&Path),
}

fn spec_f64(shape: &[u64], chunks: &[u64]) -> SinkSpec {
    SinkSpec::new(shape.to_vec(), DType::F64, chunks.to_vec())
}

fn no_setup(_: &Path) {}

fn cases() -> Vec<Case> {
    let mut v = vec![
        Case {
            name: "npy",
            path: |d, _| d.join("a.npy").display().to_string(),
            spec: || spec_f64(&[40, 30], &[8, 10]),
            setup: no_setup,
        },
        Case {
            name: "raw",
            path: |d, shape| {
                let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
                format!(
                    "{}?dtype=>f8&shape={}",
                    d.join("a.bin").display(),
                    dims.join(",")
                )
            },
            spec: || spec_f64(&[40, 30], &[8, 10]),
            setup: no_setup,
        },
        Case {
            name: "zarr v2 gzip",
            path: |d, _| d.join("a.zarr").display().to_string(),
            spec: || {
                let mut s = spec_f64(&[40, 30], &[8, 10]);
                s.zarr_version = ZarrVersion::V2;
                s.codec = Codec::Gzip { level: 1 };
                s
            },
            setup: no_setup,
        },
        Case {
            name: "zarr v3 zstd",
            path: |d, _| d.join("a.zarr").display().to_string(),
            spec: || {
                let mut s = spec_f64(&[40, 30], &[8, 10]);
                s.codec = Codec::Zstd { level: 1 };
                s
            },
            setup: no_setup,
        },
        Case {
            name: "zarr v3 sharded, in a group next to another array",
            path: |d, _| d.join("g.zarr/x").display().to_string(),
            spec: || {
                let mut s = spec_f64(&[40, 30], &[4, 5]);
                s.shards = Some(vec![8, 10]);
                s.codec = Codec::Blosc {
                    cname: "lz4".into(),
                    clevel: 5,
                    shuffle: true,
                };
                s
            },
            setup: |d| {
                let p = d.join("g.zarr/y").display().to_string();
                store(&p, &spec_f64(&[5, 5], &[2, 2]), &noise(&[5, 5], 9));
            },
        },
    ];
    if cfg!(feature = "hdf5") {
        v.push(Case {
            name: "hdf5 gzip, the whole file",
            path: |d, _| d.join("a.h5").display().to_string() + ":/g/x",
            spec: || {
                let mut s = spec_f64(&[40, 30], &[8, 10]);
                s.codec = Codec::Gzip { level: 1 };
                s
            },
            setup: no_setup,
        });
        v.push(Case {
            name: "hdf5 plain, beside another dataset",
            path: |d, _| d.join("e.h5").display().to_string() + ":/x",
            spec: || spec_f64(&[40, 30], &[8, 10]),
            setup: |d| {
                let p = d.join("e.h5").display().to_string() + ":/keep";
                let mut s = spec_f64(&[6, 7], &[3, 7]);
                s.attributes.insert("units".into(), serde_json::json!("K"));
                store(&p, &s, &noise(&[6, 7], 8));
            },
        });
    }
    v
}

#[test]
fn overwrite_keeps_the_old_output_until_finish() {
    for c in cases() {
        let dir = tempfile::tempdir().unwrap();
        (c.setup)(dir.path());
        let mut spec = (c.spec)();
        let path = (c.path)(dir.path(), &spec.shape);
        let (old, new) = (noise(&spec.shape, 1), noise(&spec.shape, 2));
        store(&path, &spec, &old);
        let before = tree(dir.path());

        // Half written, then abandoned (the job failed).
        spec.mode = WriteMode::Overwrite;
        let sink = create_sink(&path, &spec).unwrap();
        write(sink.as_ref(), &new, |n| n % 2 == 0).unwrap();
        assert!(reads_as(&path, &old), "{}: the old output changed", c.name);
        assert!(
            !incomplete(&path),
            "{}: the old output looks incomplete",
            c.name
        );
        let in_file = c.name.contains("beside another dataset");
        if !in_file {
            assert_eq!(
                tree_without_temporaries(dir.path()),
                before,
                "{}: bytes changed before finish",
                c.name
            );
        }
        drop(sink);
        assert!(reads_as(&path, &old), "{}", c.name);
        assert!(
            temporaries(dir.path()).is_empty(),
            "{}: {:?}",
            c.name,
            temporaries(dir.path())
        );
        if !in_file {
            assert_eq!(
                tree(dir.path()),
                before,
                "{}: an abandoned overwrite left traces",
                c.name
            );
        }

        // Done properly: the new output, nothing else changed.
        let sink = create_sink(&path, &spec).unwrap();
        write(sink.as_ref(), &new, |_| true).unwrap();
        assert!(reads_as(&path, &old), "{}: swapped before finish", c.name);
        sink.finish().unwrap();
        drop(sink);
        assert!(reads_as(&path, &new), "{}: not replaced", c.name);
        assert!(!incomplete(&path), "{}", c.name);
        assert!(
            temporaries(dir.path()).is_empty(),
            "{}: {:?}",
            c.name,
            temporaries(dir.path())
        );
        if c.name.contains("in a group") {
            let y = dir.path().join("g.zarr/y");
            let now = tree(dir.path());
            for (p, bytes) in before.iter().filter(|(p, _)| p.starts_with(&y)) {
                assert_eq!(
                    now.get(p),
                    Some(bytes),
                    "{}: {} changed",
                    c.name,
                    p.display()
                );
            }
        }
        if in_file {
            let keep = dir.path().join("e.h5").display().to_string() + ":/keep";
            assert!(
                reads_as(&keep, &noise(&[6, 7], 8)),
                "{}: the other dataset",
                c.name
            );
            let StoreInfo::Array(k) = info(&keep).unwrap() else {
                panic!()
            };
            assert_eq!(k.attributes.get("units"), Some(&serde_json::json!("K")));
        }
    }
}

#[test]
fn a_second_writer_is_refused_and_changes_nothing() {
    // HDF5 is left to the CLI's tests: libhdf5 shares one open file between
    // the sinks of one process, so the lock only parts processes.
    for c in cases().into_iter().filter(|c| !c.name.contains("hdf5")) {
        let dir = tempfile::tempdir().unwrap();
        (c.setup)(dir.path());
        let mut spec = (c.spec)();
        let path = (c.path)(dir.path(), &spec.shape);
        let data = noise(&spec.shape, 3);
        for first in [WriteMode::Create, WriteMode::Overwrite] {
            spec.mode = first;
            let sink = create_sink(&path, &spec).unwrap();
            write(sink.as_ref(), &data, |n| n < 3).unwrap();
            let snap = tree(dir.path());
            for mode in [WriteMode::Overwrite, WriteMode::Resume, WriteMode::Create] {
                let mut again = spec.clone();
                again.mode = mode;
                let r = create_sink(&path, &again);
                expect_in_use(r, &format!("{} while a {first:?} runs: {mode:?}", c.name));
                assert_eq!(
                    tree(dir.path()),
                    snap,
                    "{}: a refused writer changed files",
                    c.name
                );
            }
            write(sink.as_ref(), &data, |_| true).unwrap();
            sink.finish().unwrap();
            assert!(reads_as(&path, &data), "{}", c.name);
        }
    }

    // Zarr: a writer of one array keeps the whole store from being replaced,
    // not its sibling arrays from being written.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s.zarr");
    let x = root.join("x").display().to_string();
    let spec = spec_f64(&[10, 10], &[5, 5]);
    let sink = create_sink(&x, &spec).unwrap();
    let mut whole = spec.clone();
    whole.mode = WriteMode::Overwrite;
    let snap = tree(dir.path());
    expect_in_use(
        create_sink(&root.display().to_string(), &whole),
        "the root while x is written",
    );
    assert_eq!(tree(dir.path()), snap);
    store(
        &root.join("y").display().to_string(),
        &spec,
        &noise(&[10, 10], 4),
    );
    drop(sink);
}

#[test]
fn a_zarr_reader_never_sees_a_mixture() {
    for v in [ZarrVersion::V2, ZarrVersion::V3] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.zarr").display().to_string();
        let mut spec = spec_f64(&[40, 30], &[8, 10]);
        spec.zarr_version = v;
        let (old, new) = (noise(&spec.shape, 5), noise(&spec.shape, 6));
        store(&path, &spec, &old);
        let reader = open_source(&path).unwrap();
        let grid = reader.grid().clone();
        let n = grid.num_chunks();
        let bits = |b: &Block| -> Vec<u64> { b.to_f64_vec().iter().map(|v| v.to_bits()).collect() };
        // The first half read before the overwrite finishes: old values.
        spec.mode = WriteMode::Overwrite;
        let sink = create_sink(&path, &spec).unwrap();
        write(sink.as_ref(), &new, |_| true).unwrap();
        for k in 0..n / 2 {
            let idx = grid.unravel(k);
            let got = reader.read_chunk(&idx).unwrap();
            assert_eq!(
                bits(&got),
                bits(&region(&old, &grid, &idx)),
                "{v:?} chunk {idx:?}"
            );
        }
        sink.finish().unwrap();
        // The rest after the swap: never the new values, never the fill
        // value of a chunk that has gone, but an error saying why.
        for k in n / 2..n {
            let idx = grid.unravel(k);
            match reader.read_chunk(&idx) {
                Ok(got) => assert_eq!(
                    bits(&got),
                    bits(&region(&old, &grid, &idx)),
                    "{v:?} chunk {idx:?} mixed"
                ),
                Err(e) => assert!(e.to_string().contains("replaced while being read"), "{e}"),
            }
        }
        // A reader opened now sees the new array.
        assert!(reads_as(&path, &new));
    }
}

#[test]
fn resume_never_follows_a_link_out_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("c/1")).unwrap();
    std::fs::write(outside.join("victim"), b"must stay").unwrap();
    let path = dir.path().join("l.zarr").display().to_string();
    let mut spec = spec_f64(&[16, 16], &[8, 8]);
    let data = noise(&spec.shape, 7);
    let sink = create_sink(&path, &spec).unwrap();
    write(sink.as_ref(), &data, |n| n == 0).unwrap();
    drop(sink); // interrupted
    let root = dir.path().join("l.zarr");
    // A chunk directory that is a link to a directory outside the store.
    std::os::unix::fs::symlink(outside.join("c/1"), root.join("c/1")).unwrap();
    let snap = tree(dir.path());
    spec.mode = WriteMode::Resume;
    match create_sink(&path, &spec) {
        Err(e @ Error::Open { .. }) => {
            assert!(e.to_string().contains("symbolic link"), "{e}");
            assert!(e.to_string().contains("c/1"), "{e}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("resumed through a link"),
    }
    assert_eq!(tree(dir.path()), snap);
    // A chunk file that is a link to a file outside: refused the same way.
    std::fs::remove_file(root.join("c/1")).unwrap();
    std::fs::create_dir(root.join("c/1")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), root.join("c/1/0")).unwrap();
    assert!(matches!(create_sink(&path, &spec), Err(Error::Open { .. })));
    // Overwrite recovers: a fresh tree, the link's target untouched.
    std::fs::remove_dir_all(root.join("c/1")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("c/1")).unwrap();
    spec.mode = WriteMode::Overwrite;
    store(&path, &spec, &data);
    assert!(reads_as(&path, &data));
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"must stay");
    assert_eq!(std::fs::read_dir(outside.join("c/1")).unwrap().count(), 0);
    // A group on the way that is a link: refused for every mode.
    let g = dir.path().join("g.zarr");
    std::fs::create_dir_all(&g).unwrap();
    std::os::unix::fs::symlink(&outside, g.join("sub")).unwrap();
    let inner = g.join("sub/x").display().to_string();
    for mode in [WriteMode::Create, WriteMode::Overwrite, WriteMode::Resume] {
        spec.mode = mode;
        assert!(
            matches!(create_sink(&inner, &spec), Err(Error::Open { .. })),
            "{mode:?}"
        );
    }
    assert!(!outside.join("x").exists());
}

/// A small tmpfs mounted under a temporary directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount one of `size` (e.g. "2m"), or say why not and return `None`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a small tmpfs to fill up needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_names_the_chunk_and_the_write_resumes() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    for c in cases() {
        let dir = fs.path().join(c.name.replace([' ', ','], "_"));
        std::fs::create_dir(&dir).unwrap();
        (c.setup)(&dir);
        // 160 KiB of data in 2 KiB chunks, with about 60 KiB of room left.
        let mut spec = (c.spec)();
        spec.shape = vec![160, 128];
        spec.chunks = vec![16, 16];
        if spec.shards.is_some() {
            spec.chunks = vec![4, 4];
            spec.shards = Some(vec![16, 16]);
        }
        let path = (c.path)(&dir, &spec.shape);
        let data = noise(&spec.shape, 11);
        let before = tree(&dir);
        let filler = fs.path().join("filler");
        let free = fs2_free(fs.path());
        std::fs::write(&filler, vec![1u8; (free.saturating_sub(60 << 10)) as usize]).unwrap();

        let sink = create_sink(&path, &spec);
        let failed = match sink {
            Ok(sink) => write(sink.as_ref(), &data, |_| true).and_then(|()| sink.finish()),
            Err(e) => Err(e),
        };
        let e = failed.expect_err(c.name);
        let m = e.to_string();
        assert!(matches!(e, Error::Sink { .. }), "{}: {m}", c.name);
        assert!(
            m.contains("No space left") || m.contains("errno = 28"),
            "{}: {m}",
            c.name
        );
        assert!(m.contains(&path), "{}: {m}", c.name);
        assert!(
            m.contains("chunk") || m.contains("metadata"),
            "{}: {m}",
            c.name
        );
        // Everything that was there is still there, byte for byte (the
        // file the new HDF5 dataset went into is read below instead).
        let now = tree(&dir);
        for (p, bytes) in &before {
            if !(c.name.contains("beside") && p.ends_with("e.h5")) {
                assert_eq!(
                    now.get(p),
                    Some(bytes),
                    "{}: {} changed",
                    c.name,
                    p.display()
                );
            }
        }
        if c.name.contains("beside") {
            let keep = dir.join("e.h5").display().to_string() + ":/keep";
            assert!(reads_as(&keep, &noise(&[6, 7], 8)), "{}", c.name);
        }
        if open_source(&path).is_ok() {
            assert!(
                incomplete(&path),
                "{}: a failed write looks complete",
                c.name
            );
        }

        // Room again: the resume completes an exact copy.
        std::fs::remove_file(&filler).unwrap();
        spec.mode = WriteMode::Resume;
        let sink = create_sink(&path, &spec).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        write(sink.as_ref(), &data, |_| true).unwrap();
        sink.finish().unwrap();
        drop(sink);
        assert!(reads_as(&path, &data), "{}: not an exact copy", c.name);
        assert!(!incomplete(&path), "{}", c.name);

        // An overwrite that runs out of room leaves the old output whole.
        let snap = tree(&dir);
        let free = fs2_free(fs.path());
        std::fs::write(&filler, vec![1u8; (free.saturating_sub(60 << 10)) as usize]).unwrap();
        spec.mode = WriteMode::Overwrite;
        let other = noise(&spec.shape, 12);
        let r = create_sink(&path, &spec)
            .and_then(|s| write(s.as_ref(), &other, |_| true).and_then(|()| s.finish()));
        assert!(matches!(r, Err(Error::Sink { .. })), "{}: {r:?}", c.name);
        assert!(
            reads_as(&path, &data),
            "{}: the old output was damaged",
            c.name
        );
        if !c.name.contains("beside") {
            assert_eq!(
                tree(&dir),
                snap,
                "{}: the failed overwrite left traces",
                c.name
            );
        }
        std::fs::remove_file(&filler).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Free bytes of the file system holding `dir`.
fn fs2_free(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.display().to_string()).unwrap();
    // SAFETY: a valid path and a zeroed statvfs for the call to fill.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    assert_eq!(rc, 0);
    s.f_bavail as u64 * s.f_frsize as u64
}

#[test]
fn a_zarr_store_stopped_before_its_metadata_is_recovered() {
    // A write that failed or was killed after its marker but before its
    // array metadata leaves a directory with the marker and at most a
    // metadata temporary or Zarr v2's `.zattrs` (zarrs stores it before
    // `.zarray`): every mode takes it up again.
    let leftovers: [&[&str]; 3] = [&[], &[".zattrs"], &["..zarray.ndstream-tmp-1-1", ".zattrs"]];
    for left in leftovers {
        for mode in [WriteMode::Resume, WriteMode::Overwrite, WriteMode::Create] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("m.zarr");
            std::fs::create_dir(&root).unwrap();
            std::fs::write(root.join(".ndstream-incomplete"), b"").unwrap();
            for f in left {
                std::fs::write(root.join(f), b"{}").unwrap();
            }
            let path = root.display().to_string();
            let mut spec = spec_f64(&[12, 9], &[5, 4]);
            spec.mode = mode;
            let data = noise(&spec.shape, 13);
            store(&path, &spec, &data);
            assert!(reads_as(&path, &data), "{left:?} {mode:?}");
            assert!(!incomplete(&path), "{left:?} {mode:?}");
        }
    }
    // Without ndstream's marker, a directory holding only `.zattrs` is
    // someone else's: not taken up.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m.zarr");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join(".zattrs"), b"{}").unwrap();
    let mut spec = spec_f64(&[12, 9], &[5, 4]);
    spec.mode = WriteMode::Resume;
    let Err(err) = create_sink(&root.display().to_string(), &spec) else {
        panic!("a foreign directory was taken up");
    };
    assert!(err.to_string().contains("not a Zarr array"), "{err}");
    assert_eq!(std::fs::read(root.join(".zattrs")).unwrap(), b"{}");
}

/// A link planted where a `.npy` or raw output's incomplete marker goes is
/// replaced, never written through: the file it points to (here an input)
/// keeps every byte, for a new output and for a resumed one.
#[test]
fn a_link_at_the_marker_name_is_never_written_through() {
    for (name, resume) in [("a.npy", false), ("b.npy", true), ("c.bin", false)] {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("input.npy");
        std::fs::write(&victim, b"the only copy").unwrap();
        let out = dir.path().join(name);
        let path = if name.ends_with(".bin") {
            format!("{}?dtype=<f8&shape=10,6", out.display())
        } else {
            out.display().to_string()
        };
        let mut spec = spec_f64(&[10, 6], &[3, 6]);
        let data = noise(&spec.shape, 5);
        if resume {
            let sink = create_sink(&path, &spec).unwrap();
            write(sink.as_ref(), &data, |n| n == 0).unwrap();
            drop(sink); // interrupted: its marker stays
            spec.mode = WriteMode::Resume;
        }
        let marker = dir.path().join(format!("{name}.ndstream-incomplete"));
        let _ = std::fs::remove_file(&marker);
        std::os::unix::fs::symlink(&victim, &marker).unwrap();
        store(&path, &spec, &data);
        assert_eq!(std::fs::read(&victim).unwrap(), b"the only copy", "{name}");
        assert!(reads_as(&path, &data), "{name}");
        assert!(
            std::fs::symlink_metadata(&marker).is_err(),
            "{name}: marker left"
        );
    }
}

/// `--resume` into a big-endian Zarr v2 array (as zarr-python writes
/// `>f8`) is refused: ndstream writes little-endian chunks, which the
/// array's metadata would misdescribe. The array keeps every byte.
#[test]
fn resume_into_a_big_endian_zarr_v2_array_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("be.zarr");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join(".zarray"),
        br#"{"zarr_format": 2, "shape": [8, 4], "chunks": [4, 4], "dtype": ">f8",
            "compressor": {"id": "zstd", "level": 3}, "fill_value": 0.0,
            "order": "C", "filters": null}"#,
    )
    .unwrap();
    std::fs::write(root.join(".ndstream-incomplete"), b"").unwrap();
    let snap = tree(dir.path());
    let mut spec = spec_f64(&[8, 4], &[4, 4]);
    spec.zarr_version = ZarrVersion::V2;
    spec.codec = Codec::Zstd { level: 3 };
    spec.mode = WriteMode::Resume;
    let Err(err) = create_sink(&root.display().to_string(), &spec) else {
        panic!("resumed a big-endian array with little-endian chunks");
    };
    assert!(err.to_string().contains("cannot resume"), "{err}");
    assert!(err.to_string().contains("big"), "{err}");
    assert_eq!(tree(dir.path()), snap);
    // A little-endian array of the same layout is taken up.
    let le = std::fs::read_to_string(root.join(".zarray"))
        .unwrap()
        .replace(">f8", "<f8");
    std::fs::write(root.join(".zarray"), le).unwrap();
    let data = noise(&spec.shape, 2);
    store(&root.display().to_string(), &spec, &data);
    assert!(reads_as(&root.display().to_string(), &data));
}

/// `WriteMode::Into` writes every chunk into an existing array through its
/// own codecs (here a big-endian Zarr v2 array with zstd, which the direct
/// little-endian zstd path must not be used for), keeping its metadata and
/// attributes; it is refused, with nothing changed, where the grid
/// differs, where there is no array, and for formats other than Zarr.
#[test]
fn writing_into_an_existing_zarr_array_keeps_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("be.zarr");
    std::fs::create_dir(&root).unwrap();
    let zarray = br#"{"zarr_format": 2, "shape": [8, 5], "chunks": [4, 3], "dtype": ">f8",
        "compressor": {"id": "zstd", "level": 3}, "fill_value": 0.0,
        "order": "C", "filters": null}"#;
    std::fs::write(root.join(".zarray"), zarray).unwrap();
    std::fs::write(root.join(".zattrs"), br#"{"units": "K"}"#).unwrap();
    let path = root.display().to_string();
    let data = noise(&[8, 5], 3);
    let mut spec = spec_f64(&[8, 5], &[4, 3]);
    // The codec and version asked for are not used: the array's own are.
    spec.codec = Codec::Zstd { level: 1 };
    spec.mode = WriteMode::Into;
    let sink = create_sink(&path, &spec).unwrap();
    assert!(incomplete(&path), "marked incomplete while written into");
    assert!(!sink.is_done(&[0, 0]));
    write(sink.as_ref(), &data, |_| true).unwrap();
    sink.finish().unwrap();
    assert!(reads_as(&path, &data));
    assert!(!incomplete(&path));
    assert_eq!(std::fs::read(root.join(".zarray")).unwrap(), zarray);
    assert_eq!(
        std::fs::read(root.join(".zattrs")).unwrap(),
        br#"{"units": "K"}"#
    );
    // Written again, every chunk is rewritten (none counts as done).
    let sink = create_sink(&path, &spec).unwrap();
    assert!((0..4).all(|n| !sink.is_done(&sink.grid().unravel(n))));
    drop(sink);

    // Refusals change nothing.
    let snap = tree(dir.path());
    for (target, chunks, want) in [
        (
            path.clone(),
            vec![4, 5],
            "cannot write into the existing array",
        ),
        (
            dir.path().join("none.zarr").display().to_string(),
            vec![4, 3],
            "no Zarr array here",
        ),
        (
            dir.path().join("x.h5:/x").display().to_string(),
            vec![4, 3],
            "Zarr arrays only",
        ),
        (
            dir.path().join("x.npy").display().to_string(),
            vec![4, 3],
            "Zarr arrays only",
        ),
    ] {
        let mut s = spec_f64(&[8, 5], &chunks);
        s.mode = WriteMode::Into;
        let Err(e) = create_sink(&target, &s) else {
            panic!("{target}: wrote into it");
        };
        assert!(e.to_string().contains(want), "{target}: {e}");
        assert_eq!(tree(dir.path()), snap, "{target}");
    }
}

/// Writers of arrays in one new Zarr group, on threads of one process,
/// each write the group's metadata through a temporary of their own: none
/// fails for another's rename, and the group is whole.
#[test]
fn threads_creating_arrays_in_one_new_group_all_succeed() {
    for version in [ZarrVersion::V2, ZarrVersion::V3] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("g.zarr");
        std::thread::scope(|s| {
            for t in 0..8 {
                let root = &root;
                s.spawn(move || {
                    let path = root.join(format!("sub/x{t}")).display().to_string();
                    let mut spec = spec_f64(&[4, 4], &[2, 2]);
                    spec.zarr_version = version;
                    let data = noise(&spec.shape, t);
                    store(&path, &spec, &data);
                    assert!(reads_as(&path, &data), "{version:?} {t}");
                });
            }
        });
        match info(&root.join("sub").display().to_string()).unwrap() {
            StoreInfo::Group { arrays, .. } => assert_eq!(arrays.len(), 8, "{version:?}"),
            other => panic!("{version:?}: not a group: {other:?}"),
        }
        assert!(temporaries(dir.path()).is_empty(), "{version:?}");
    }
}

/// `WriteMode::Into` under the faults the other modes are tested for: while
/// it writes, every other writer of the array (and of its whole store) is
/// refused with nothing changed, and it is refused while another writer
/// runs; on a full disk it names the chunk, keeps the array's metadata
/// byte for byte and leaves the array marked incomplete, and writing into
/// it again once there is room gives an exact, complete array.
#[test]
fn writing_into_a_zarr_array_under_faults() {
    for version in [ZarrVersion::V2, ZarrVersion::V3] {
        // A second writer, both ways round.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.zarr/x").display().to_string();
        let mut spec = spec_f64(&[24, 20], &[8, 10]);
        spec.zarr_version = version;
        store(&path, &spec, &noise(&spec.shape, 20));
        let data = noise(&spec.shape, 21);
        let mut into = spec.clone();
        into.mode = WriteMode::Into;
        let sink = create_sink(&path, &into).unwrap();
        write(sink.as_ref(), &data, |n| n < 2).unwrap();
        let snap = tree(dir.path());
        for mode in [
            WriteMode::Into,
            WriteMode::Overwrite,
            WriteMode::Resume,
            WriteMode::Create,
        ] {
            let mut again = spec.clone();
            again.mode = mode;
            expect_in_use(
                create_sink(&path, &again),
                &format!("{version:?}: {mode:?} while an Into runs"),
            );
            assert_eq!(tree(dir.path()), snap, "{version:?} {mode:?}");
        }
        let mut whole = spec.clone();
        whole.mode = WriteMode::Overwrite;
        let root = dir.path().join("s.zarr").display().to_string();
        expect_in_use(
            create_sink(&root, &whole),
            "the store while x is written into",
        );
        assert_eq!(tree(dir.path()), snap);
        write(sink.as_ref(), &data, |_| true).unwrap();
        sink.finish().unwrap();
        drop(sink);
        assert!(reads_as(&path, &data), "{version:?}");
        assert!(!incomplete(&path), "{version:?}");

        let mut over = spec.clone();
        over.mode = WriteMode::Overwrite;
        let sink = create_sink(&path, &over).unwrap();
        let snap = tree(dir.path());
        expect_in_use(create_sink(&path, &into), "Into while an overwrite runs");
        assert_eq!(tree(dir.path()), snap);
        drop(sink);
    }

    // A full disk part way through.
    let Some(fs) = Tmpfs::mount("2m") else { return };
    for version in [ZarrVersion::V2, ZarrVersion::V3] {
        let dir = fs.path().join(format!("{version:?}"));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("a.zarr").display().to_string();
        let mut spec = spec_f64(&[160, 128], &[16, 16]);
        spec.zarr_version = version;
        // A small array to write into (its chunks are all fill), then
        // 160 KiB of data with about 60 KiB of room.
        let sink = create_sink(&path, &spec).unwrap();
        sink.finish().unwrap();
        drop(sink);
        let meta: Vec<(PathBuf, Vec<u8>)> = [".zarray", ".zattrs", "zarr.json"]
            .iter()
            .map(|f| dir.join("a.zarr").join(f))
            .filter(|p| p.exists())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        assert!(!meta.is_empty());
        let data = noise(&spec.shape, 22);
        let filler = fs.path().join("filler");
        let free = fs2_free(fs.path());
        std::fs::write(&filler, vec![1u8; (free.saturating_sub(60 << 10)) as usize]).unwrap();
        spec.mode = WriteMode::Into;
        let failed = create_sink(&path, &spec)
            .and_then(|s| write(s.as_ref(), &data, |_| true).and_then(|()| s.finish()));
        let e = failed.expect_err("a full disk");
        let m = e.to_string();
        assert!(matches!(e, Error::Sink { .. }), "{version:?}: {m}");
        assert!(
            m.contains("No space left") || m.contains("errno = 28"),
            "{version:?}: {m}"
        );
        assert!(m.contains(&path) && m.contains("chunk"), "{version:?}: {m}");
        for (p, bytes) in &meta {
            assert_eq!(&std::fs::read(p).unwrap(), bytes, "{}", p.display());
        }
        assert!(
            incomplete(&path),
            "{version:?}: a failed Into looks complete"
        );

        std::fs::remove_file(&filler).unwrap();
        let sink = create_sink(&path, &spec).unwrap();
        write(sink.as_ref(), &data, |_| true).unwrap();
        sink.finish().unwrap();
        drop(sink);
        assert!(reads_as(&path, &data), "{version:?}: not an exact copy");
        assert!(!incomplete(&path), "{version:?}");
        for (p, bytes) in &meta {
            assert_eq!(&std::fs::read(p).unwrap(), bytes, "{}", p.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
