//! Memory-mapped sources and the resident set: a large `.npy` read through
//! leaves none of its pages mapped, a small one keeps them for the next read.

use std::path::Path;

use ndstream_engine::ChunkSource;
use ndstream_formats::open_source;

/// Write a C-order little-endian float64 `.npy` of `rows` × `cols` holding
/// `i * cols + j` (the header is padded to 64 bytes, as NumPy does).
fn write_npy(path: &Path, rows: usize, cols: usize) {
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    for k in 0..rows * cols {
        bytes.extend_from_slice(&(k as f64).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Resident bytes of this process's mappings of `path` (`/proc/self/smaps`).
fn resident_of(path: &Path) -> u64 {
    let want = std::fs::canonicalize(path).unwrap().display().to_string();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut ours = false;
    let mut kib = 0u64;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header line: "start-end perms offset dev inode path".
            ours = line.split_whitespace().nth(5) == Some(want.as_str());
        } else if ours && first == "Rss:" {
            kib += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    kib * 1024
}

/// Put `path` in the page cache the way a sequential reader does (`cat`,
/// or a previous job): written back, dropped, and read again, so readahead
/// fills the cache with large folios. A fault on a mapped page of a large
/// folio may map the whole folio (Linux 6.18+), well beyond the page.
fn cache_as_read(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a plain advisory call on an open descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    std::io::copy(&mut &f, &mut std::io::sink()).unwrap();
}

/// Sum every chunk of `src` (float64), as a reduction would read it.
fn sum_chunks(src: &dyn ChunkSource) -> f64 {
    let grid = src.grid().clone();
    (0..grid.num_chunks())
        .map(|c| {
            let b = src.read_chunk(&grid.unravel(c)).unwrap();
            b.view::<f64>().unwrap().sum()
        })
        .sum()
}

#[test]
#[cfg(target_os = "linux")]
fn a_large_npy_read_through_leaves_no_pages_mapped() {
    let dir = tempfile::tempdir().unwrap();
    // 24 MiB: several auto chunks, and well above what stays mapped.
    let (rows, cols) = (3072usize, 1024usize);
    let path = dir.path().join("big.npy");
    write_npy(&path, rows, cols);
    cache_as_read(&path);
    let src = open_source(&path.display().to_string()).unwrap();
    assert!(src.grid().num_chunks() > 1, "{:?}", src.grid());
    let n = (rows * cols) as f64;
    assert_eq!(sum_chunks(src.as_ref()), n * (n - 1.0) / 2.0);
    let rss = resident_of(&path);
    assert!(rss <= 256 << 10, "{rss} bytes of the file stay resident");
    // A strided column read drops its pages too.
    let col = src
        .read_selection(&[
            ndstream_engine::AxisSel::range(0..rows as u64),
            ndstream_engine::AxisSel::range(7..8),
        ])
        .unwrap();
    let want: f64 = (0..rows).map(|i| (i * cols + 7) as f64).sum();
    assert_eq!(col.view::<f64>().unwrap().sum(), want);
    let rss = resident_of(&path);
    assert!(rss <= 256 << 10, "{rss} bytes resident after a column");
}

#[test]
#[cfg(target_os = "linux")]
fn a_small_npy_keeps_its_pages_for_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (512usize, 512usize); // 2 MiB
    let path = dir.path().join("small.npy");
    write_npy(&path, rows, cols);
    let src = open_source(&path.display().to_string()).unwrap();
    let n = (rows * cols) as f64;
    assert_eq!(sum_chunks(src.as_ref()), n * (n - 1.0) / 2.0);
    let rss = resident_of(&path);
    assert!(rss >= (rows * cols * 8) as u64, "only {rss} bytes resident");
}

#[test]
#[cfg(all(target_os = "linux", feature = "hdf5"))]
fn strided_parts_of_mapped_hdf5_chunks_leave_no_pages_mapped() {
    use ndstream_engine::AxisSel;
    // 16 MiB of unfiltered float32 in 256 KiB chunks, as h5py writes them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chunked.h5");
    let (n, c) = (2048usize, 256usize);
    let data: Vec<f32> = (0..n * n).map(|k| k as f32).collect();
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset::<f32>()
            .shape((n, n))
            .chunk((c, c))
            .create("x")
            .unwrap()
            .write_raw(&data)
            .unwrap();
    }
    cache_as_read(&path);
    let src = open_source(&format!("{}:/x", path.display())).unwrap();
    let grid = src.grid().clone();
    let half = AxisSel {
        start: 0,
        step: 2,
        len: (c / 2) as u64,
    };
    let mut total = 0f64;
    for k in 0..grid.num_chunks() {
        let idx = grid.unravel(k);
        let part = src
            .read_chunk_part(&idx, &[half, half])
            .expect("an unfiltered chunk is mapped")
            .unwrap();
        total += part
            .view::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>();
    }
    // Every even row and column of the whole array.
    let want: f64 = (0..n)
        .step_by(2)
        .flat_map(|i| (0..n).step_by(2).map(move |j| (i * n + j) as f32 as f64))
        .sum();
    assert_eq!(total, want);
    let rss = resident_of(&path);
    assert!(rss <= 256 << 10, "{rss} bytes of the file stay resident");
}
