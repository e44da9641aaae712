//! Memory budget: a 4 GiB source reduced and stored under a 64 MiB budget,
//! measured in a separate process (so the peak RSS is this job's alone).

use std::process::Command;
use std::sync::Arc;

use ndstream::{Array, Executor};

use crate::common::{CountingSink, PatternSource};

const BUDGET: u64 = 64 << 20;

/// Run in a child process by `four_gib_stream_under_a_64_mib_budget`.
#[test]
#[ignore = "run by four_gib_stream_under_a_64_mib_budget in a child process"]
fn memory_child_four_gib() {
    // 32768 x 16384 f64 = 4 GiB, in 2 MiB chunks.
    let src = Arc::new(PatternSource::new(&[32768, 16384], &[512, 512]));
    let x = Array::from_source(src);
    let exec = Executor::builder()
        .memory(BUDGET)
        .threads(2)
        .build()
        .unwrap();
    let total = exec.compute(&x.sum(None).unwrap()).unwrap().to_f64_vec()[0];
    let m0 = exec.compute(&x.mean(Some(0)).unwrap()).unwrap();
    let sink = CountingSink::new(&[32768, 16384], ndstream::DType::F64, &[512, 512]);
    exec.store(&x, &sink).unwrap();
    let stored = *sink.sum.lock().unwrap();
    println!(
        "RESULT total={total} mean0_len={} stored={stored}",
        m0.len()
    );
    println!(
        "RESULT peak_reserved={} vm_hwm={}",
        exec.budget().peak(),
        ndstream::peak_rss()
    );
}

#[test]
fn four_gib_stream_under_a_64_mib_budget() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "memory::memory_child_four_gib",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        stdout
            .split_whitespace()
            .find_map(|w| {
                w.strip_prefix(&format!("{name}="))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or_else(|| panic!("no {name} in child output:\n{stdout}"))
    };
    let (peak, hwm) = (field("peak_reserved"), field("vm_hwm"));
    let (total, stored) = (field("total"), field("stored"));
    eprintln!(
        "4 GiB under 64 MiB: peak reserved {:.1} MiB, VmHWM {:.1} MiB",
        peak / 1048576.0,
        hwm / 1048576.0
    );
    assert!(
        peak <= BUDGET as f64,
        "peak reserved {peak} over the budget"
    );
    assert!(
        hwm <= (BUDGET + (64 << 20)) as f64,
        "peak RSS {hwm} over budget + 64 MiB"
    );
    // The values are uniform in [0, 1): the sum of 2^29 of them is about 2^28.
    let n = (32768u64 * 16384) as f64;
    assert!((total / n - 0.5).abs() < 1e-3, "mean {}", total / n);
    assert!(
        (stored - total).abs() <= 1e-6 * total,
        "store saw {stored}, sum {total}"
    );
    assert_eq!(field("mean0_len"), 16384.0);
}
