//! Tests: every fill path equals the scalar reference bit for bit, values
//! are independent of how a run is requested, and the distributions match
//! their closed forms (moments, tails, Kolmogorov–Smirnov, chi-square).

use super::hash::{Key, GAMMA};
use super::ziggurat::{exponential_tables, normal_tables, EXP_R, LAYERS, NORM_R};
use super::*;

const N: usize = 1_000_000;

const NORMAL: Distribution = Distribution::Normal {
    loc: 0.0,
    scale: 1.0,
};
const EXPONENTIAL: Distribution = Distribution::Exponential { scale: 1.0 };
const UNIFORM: Distribution = Distribution::Uniform {
    low: 0.0,
    high: 1.0,
};

fn dists() -> [Distribution; 6] {
    [
        NORMAL,
        Distribution::Normal {
            loc: 10.0,
            scale: 0.1,
        },
        UNIFORM,
        Distribution::Uniform {
            low: -3.5,
            high: 2.25,
        },
        EXPONENTIAL,
        Distribution::Exponential { scale: 4.0 },
    ]
}

fn sample(dist: Distribution, seed: u64, n: usize) -> Vec<f64> {
    let mut v = vec![0.0; n];
    fill(dist, seed, 0, 1, &mut v);
    v
}

/// All implemented paths: the dispatching one, the portable one, and AVX2
/// and AVX-512 when this CPU has them.
/// A fill implementation: `(dist, seed, start, stride, out)`.
type Fill = fn(Distribution, u64, u64, u64, &mut [f64]);

fn paths() -> Vec<(&'static str, Fill)> {
    let mut p: Vec<(&'static str, Fill)> = vec![
        ("fill", fill),
        ("portable", |d, s, a, st, o| {
            fill_portable(d, s, a, st, as_uninit(o))
        }),
    ];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        fn avx(d: Distribution, s: u64, a: u64, st: u64, o: &mut [f64]) {
            // SAFETY: only listed after detecting AVX2.
            unsafe { fill_avx2(d, s, a, st, as_uninit(o)) }
        }
        p.push(("avx2", avx));
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") {
        fn avx512(d: Distribution, s: u64, a: u64, st: u64, o: &mut [f64]) {
            // SAFETY: only listed after detecting AVX-512F and AVX-512DQ.
            unsafe { fill_avx512(d, s, a, st, as_uninit(o)) }
        }
        p.push(("avx512", avx512));
    }
    p
}

fn assert_same_bits(
    got: &[f64],
    dist: Distribution,
    seed: u64,
    start: u64,
    stride: u64,
    what: &str,
) {
    for (k, v) in got.iter().enumerate() {
        let idx = start.wrapping_add((k as u64).wrapping_mul(stride));
        let want = value_at(dist, seed, idx);
        assert_eq!(
            v.to_bits(),
            want.to_bits(),
            "{what}: {dist:?} seed {seed} index {idx}: {v} != {want}"
        );
    }
}

#[test]
fn tables_are_a_ziggurat() {
    for (t, pdf, v) in [
        (
            normal_tables(),
            (|x: f64| (-0.5 * x * x).exp()) as fn(f64) -> f64,
            super::ziggurat::NORM_V,
        ),
        (
            exponential_tables(),
            |x: f64| (-x).exp(),
            super::ziggurat::EXP_V,
        ),
    ] {
        assert!(t.x.iter().all(|x| x.is_finite()));
        assert!(
            t.x.windows(2).all(|w| w[0] > w[1]),
            "edges strictly decrease"
        );
        assert_eq!(t.x[LAYERS], 0.0);
        assert_eq!(t.f[LAYERS], 1.0);
        // Layer 0: base rectangle plus tail has area V by construction of x[0].
        assert!((t.x[0] * pdf(t.x[1]) - v).abs() < 1e-15);
        // Every other layer (including the top one) has area V.
        for i in 1..LAYERS {
            let area = t.x[i] * (t.f[i + 1] - t.f[i]);
            assert!(
                (area / v - 1.0).abs() < 1e-6,
                "layer {i} area {area} vs {v}"
            );
        }
    }
}

#[test]
fn fill_equals_value_at_for_any_start_stride_length() {
    let starts = [0u64, 1, 12_345, 1 << 40, u64::MAX - 5];
    let strides = [1u64, 2, 3, 100, 20_000, 7919];
    let lengths = [0usize, 1, 3, 4, 5, 127, 128, 129, 255, 256, 257, 513, 1003];
    for (name, f) in paths() {
        for dist in dists() {
            for &start in &starts {
                for &stride in &strides {
                    for &len in &lengths {
                        let mut out = vec![f64::NAN; len];
                        f(dist, 99, start, stride, &mut out);
                        assert_same_bits(&out, dist, 99, start, stride, name);
                    }
                }
            }
        }
    }
}

#[test]
fn slow_paths_agree_on_a_long_run() {
    // 1M consecutive values contain ~4300 (normal) and ~6400 (exponential)
    // wedge/retry lanes and ~50 base-layer rejections (the tail) per
    // ziggurat; every path must patch them identically.
    for (name, f) in paths() {
        for dist in [NORMAL, EXPONENTIAL, UNIFORM] {
            let mut out = vec![0.0; 1_000_000];
            f(dist, 5, 1_000, 1, &mut out);
            assert_same_bits(&out, dist, 5, 1_000, 1, name);
        }
    }
}

#[test]
fn branch_free_slow_paths_equal_the_ziggurat_loops() {
    // Every fast-path rejection among 4M counters (about 17k normal and 26k
    // exponential: wedges accepted and refused, retries, the tail): the
    // slow paths' branch-free shortcut must give the loops' bits.
    use super::hash::fmix;
    use super::ziggurat::{
        exponential_slow, exponential_slow_loop, half, layer, normal_slow, normal_slow_loop, sym,
    };
    let key = Key::new(11);
    let (nt, et) = (normal_tables(), exponential_tables());
    let (mut normal_seen, mut exp_seen, mut base_layer) = (0, 0, 0);
    for index in 0..4_000_000u64 {
        let z = key.counter(index);
        let b = fmix(z);
        let i = layer(b);
        if (sym(b) * nt.x[i]).abs() >= nt.x[i + 1] {
            let (got, want) = (normal_slow(nt, key, z, b), normal_slow_loop(nt, key, z, b));
            assert_eq!(got.to_bits(), want.to_bits(), "normal, index {index}");
            normal_seen += 1;
            base_layer += usize::from(i == 0);
        }
        if half(b) * et.x[i] >= et.x[i + 1] {
            let (got, want) = (
                exponential_slow(et, key, z, b),
                exponential_slow_loop(et, key, z, b),
            );
            assert_eq!(got.to_bits(), want.to_bits(), "exponential, index {index}");
            exp_seen += 1;
        }
    }
    assert!(normal_seen > 12_000 && exp_seen > 18_000 && base_layer > 100);
}

#[test]
fn stride_zero_repeats_one_value() {
    let mut out = [0.0; 9];
    fill(NORMAL, 3, 77, 0, &mut out);
    assert!(out
        .iter()
        .all(|v| v.to_bits() == value_at(NORMAL, 3, 77).to_bits()));
}

#[test]
fn chunking_and_threads_do_not_change_values() {
    let whole = sample(NORMAL, 11, 10_000);
    // Irregular pieces.
    let mut pieces = vec![0.0; 10_000];
    let mut at = 0usize;
    for len in [1usize, 7, 128, 129, 1000, 3].iter().cycle() {
        if at >= pieces.len() {
            break;
        }
        let end = (at + len).min(pieces.len());
        fill(NORMAL, 11, at as u64, 1, &mut pieces[at..end]);
        at = end;
    }
    assert_eq!(whole, pieces);
    // Four threads, interleaved rows of a 100 x 100 array.
    let mut threaded = vec![0.0; 10_000];
    std::thread::scope(|s| {
        for (t, rows) in threaded.chunks_mut(2_500).enumerate() {
            s.spawn(move || {
                for (r, row) in rows.chunks_mut(100).enumerate() {
                    fill(NORMAL, 11, ((t * 25 + r) * 100) as u64, 1, row);
                }
            });
        }
    });
    assert_eq!(whole, threaded);
    // A column, generated alone, is the strided view of the whole.
    let mut col = vec![0.0; 100];
    fill(NORMAL, 11, 37, 100, &mut col);
    let want: Vec<f64> = whole.iter().skip(37).step_by(100).copied().collect();
    assert_eq!(col, want);
}

#[test]
fn deterministic_and_seed_dependent() {
    for dist in dists() {
        let a = sample(dist, 0, 1000);
        assert_eq!(a, sample(dist, 0, 1000));
        let b = sample(dist, 1, 1000);
        assert!(
            a.iter().zip(&b).filter(|(x, y)| x == y).count() < 5,
            "{dist:?}"
        );
    }
    assert_ne!(Key::new(0), Key::new(1));
    assert_ne!(
        Key::new(0).counter(1),
        Key::new(0).counter(0).wrapping_add(1)
    );
    assert_eq!(
        Key::new(0).counter(1),
        Key::new(0).counter(0).wrapping_add(GAMMA)
    );
}

#[test]
fn loc_and_scale_are_an_affine_map() {
    let d = Distribution::Normal {
        loc: 10.0,
        scale: 0.1,
    };
    for i in 0..2000 {
        assert_eq!(
            value_at(d, 4, i).to_bits(),
            (10.0 + 0.1 * value_at(NORMAL, 4, i)).to_bits()
        );
        let e = value_at(Distribution::Exponential { scale: 4.0 }, 4, i);
        assert_eq!(e.to_bits(), (4.0 * value_at(EXPONENTIAL, 4, i)).to_bits());
    }
}

#[test]
fn f32_is_the_cast_of_f64() {
    for dist in dists() {
        for (start, stride, len) in [
            (0u64, 1u64, 1000usize),
            (5, 100, 513),
            (1 << 33, 3, 256),
            (9, 1, 0),
        ] {
            let mut a = vec![0.0f64; len];
            let mut b = vec![0.0f32; len];
            fill(dist, 21, start, stride, &mut a);
            fill_f32(dist, 21, start, stride, &mut b);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((*x as f32).to_bits(), y.to_bits());
            }
        }
    }
}

// ---- statistics -----------------------------------------------------------

/// erfc(x) with fractional error below 1.2e-7 everywhere (Chebyshev fit of
/// Press et al., "Numerical Recipes", section 6.2).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0),
    )
}

/// Kolmogorov–Smirnov statistic of `v` against `cdf`.
fn ks(mut v: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max)
}

/// Pearson chi-square of `v` over bins `edges` (plus the two open ends).
fn chi_square(v: &[f64], edges: &[f64], cdf: impl Fn(f64) -> f64) -> (f64, usize) {
    let mut counts = vec![0u64; edges.len() + 1];
    for &x in v {
        counts[edges.partition_point(|&e| e <= x)] += 1;
    }
    let n = v.len() as f64;
    let mut bounds = vec![0.0];
    bounds.extend(edges.iter().map(|&e| cdf(e)));
    bounds.push(1.0);
    let chi = counts
        .iter()
        .zip(bounds.windows(2))
        .map(|(&c, w)| {
            let e = n * (w[1] - w[0]);
            (c as f64 - e).powi(2) / e
        })
        .sum();
    (chi, counts.len() - 1)
}

/// The 1e-3 critical value of the KS statistic for `n` samples.
fn ks_critical(n: usize) -> f64 {
    1.95 / (n as f64).sqrt()
}

/// A chi-square with `dof` degrees of freedom beyond 5 standard deviations.
fn chi_too_big(chi: f64, dof: usize) -> bool {
    chi > dof as f64 + 5.0 * (2.0 * dof as f64).sqrt()
}

#[test]
fn erfc_matches_known_values() {
    assert!((erfc(0.0) - 1.0).abs() < 1e-7);
    assert!((erfc(1.0) - 0.157_299_207_050_285_1).abs() < 1e-7);
    assert!((erfc(-2.0) - 1.995_322_265_018_952_7).abs() < 1e-7);
    assert!((normal_cdf(3.0) - 0.998_650_101_968_369_9).abs() < 1e-7);
}

#[test]
fn normal_matches_the_gaussian() {
    let v = sample(
        Distribution::Normal {
            loc: 10.0,
            scale: 0.1,
        },
        2024,
        N,
    );
    let (m, var) = mean_var(&v);
    let sem = 0.1 / (N as f64).sqrt();
    assert!((m - 10.0).abs() < 5.0 * sem, "mean {m}");
    assert!((var / 0.01 - 1.0).abs() < 0.01, "variance {var}");
    let z: Vec<f64> = v.iter().map(|x| (x - 10.0) / 0.1).collect();
    // Symmetry and fourth moment.
    let skew = z.iter().map(|x| x * x * x).sum::<f64>() / N as f64;
    let kurt = z.iter().map(|x| x.powi(4)).sum::<f64>() / N as f64;
    assert!(skew.abs() < 5.0 * (15.0 / N as f64).sqrt(), "skew {skew}");
    assert!(
        (kurt - 3.0).abs() < 5.0 * (96.0 / N as f64).sqrt(),
        "kurtosis {kurt}"
    );
    // Tails: beyond 3 sigma (0.27%) and beyond the ziggurat's R (the tail
    // sampler, 2.58e-4), each within 5 sigma of its binomial expectation.
    for (cut, p) in [
        (3.0, 2.0 * (1.0 - normal_cdf(3.0))),
        (NORM_R, 2.0 * normal_cdf(-NORM_R)),
    ] {
        let count = z.iter().filter(|x| x.abs() > cut).count() as f64;
        let e = p * N as f64;
        assert!(
            (count - e).abs() < 5.0 * e.sqrt(),
            "beyond {cut}: {count} vs {e}"
        );
    }
    let upper = z.iter().filter(|x| **x > 3.0).count() as f64;
    let lower = z.iter().filter(|x| **x < -3.0).count() as f64;
    assert!(
        (upper - lower).abs() < 5.0 * (upper + lower).sqrt(),
        "{upper} vs {lower}"
    );
    let edges: Vec<f64> = (0..=200).map(|k| -5.0 + k as f64 * 0.05).collect();
    let (chi, dof) = chi_square(&z, &edges, normal_cdf);
    assert!(!chi_too_big(chi, dof), "chi-square {chi} on {dof} dof");
    let d = ks(z, normal_cdf);
    assert!(d < ks_critical(N), "KS {d}");
}

#[test]
fn exponential_matches_closed_form() {
    let v = sample(Distribution::Exponential { scale: 2.0 }, 8, N);
    assert!(v.iter().all(|x| *x >= 0.0));
    let (m, var) = mean_var(&v);
    assert!((m - 2.0).abs() < 5.0 * 2.0 / (N as f64).sqrt(), "mean {m}");
    assert!((var / 4.0 - 1.0).abs() < 0.02, "variance {var}");
    let cdf = |x: f64| if x <= 0.0 { 0.0 } else { 1.0 - (-x).exp() };
    let z: Vec<f64> = v.iter().map(|x| x / 2.0).collect();
    // The tail sampler (beyond R = 7.697) carries e^-R = 4.5e-4.
    let tail = z.iter().filter(|x| **x > EXP_R).count() as f64;
    let e = (-EXP_R).exp() * N as f64;
    assert!((tail - e).abs() < 5.0 * e.sqrt(), "tail {tail} vs {e}");
    let edges: Vec<f64> = (1..=200).map(|k| k as f64 * 0.05).collect();
    let (chi, dof) = chi_square(&z, &edges, cdf);
    assert!(!chi_too_big(chi, dof), "chi-square {chi} on {dof} dof");
    let d = ks(z, cdf);
    assert!(d < ks_critical(N), "KS {d}");
}

#[test]
fn uniform_matches_closed_form() {
    let v = sample(
        Distribution::Uniform {
            low: -3.0,
            high: 5.0,
        },
        77,
        N,
    );
    assert!(v.iter().all(|x| (-3.0..5.0).contains(x)));
    let (m, var) = mean_var(&v);
    let sd = 8.0 / 12f64.sqrt();
    assert!((m - 1.0).abs() < 5.0 * sd / (N as f64).sqrt(), "mean {m}");
    assert!((var / (64.0 / 12.0) - 1.0).abs() < 0.01, "variance {var}");
    let d = ks(v, |x| ((x + 3.0) / 8.0).clamp(0.0, 1.0));
    assert!(d < ks_critical(N), "KS {d}");
    // Exactness of the 53-bit mapping.
    let u = sample(UNIFORM, 1, 1000);
    assert!(u.iter().all(|x| (x * (1u64 << 53) as f64).fract() == 0.0));
}

#[test]
fn no_correlation_between_neighbours_or_seeds() {
    let a = sample(NORMAL, 100, 200_000);
    let b = sample(NORMAL, 101, 200_000);
    let tol = 5.0 / (a.len() as f64).sqrt();
    let corr =
        |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>() / x.len() as f64;
    assert!(corr(&a, &b).abs() < tol, "seeds 100 vs 101");
    assert!(corr(&a[1..], &a[..a.len() - 1]).abs() < tol, "lag 1");
    assert!(
        corr(&a[1000..], &a[..a.len() - 1000]).abs() < tol,
        "lag 1000"
    );
    // Squares too (catches dependence that keeps signs random).
    let sq = |v: &[f64]| v.iter().map(|x| x * x - 1.0).collect::<Vec<_>>();
    let (a2, b2) = (sq(&a), sq(&b));
    assert!(corr(&a2, &b2).abs() < 2.0 * tol, "squares across seeds");
    assert!(
        corr(&a2[1..], &a2[..a2.len() - 1]).abs() < 2.0 * tol,
        "squares lag 1"
    );
}

/// Timing probe, not a test: `cargo test --release -p ndstream-engine --lib
/// random -- --ignored --nocapture`. Generates rows of 1000 values (the
/// shape of the executor's calls): 1e8 normals through `fill` on one
/// thread, then the best of 5 runs of 2e6 values for each path.
#[test]
#[ignore]
fn timing_ns_per_value() {
    use std::time::Instant;
    /// CPU time of this thread (Linux), so that other processes on a shared
    /// machine do not inflate the figure; wall time where unavailable.
    fn cpu_ns() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        s.split_whitespace().next()?.parse().ok()
    }
    let mut buf = vec![0.0f64; 1000];
    let mut check = 0.0;
    let mut time = |f: Fill, dist: Distribution, total: usize| {
        let (t0, c0) = (Instant::now(), cpu_ns());
        let mut start = 0u64;
        while (start as usize) < total {
            f(dist, 0, start, 1, &mut buf);
            check += buf[17];
            start += buf.len() as u64;
        }
        let wall = t0.elapsed().as_secs_f64() * 1e9 / total as f64;
        let cpu = match (c0, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / total as f64,
            _ => wall,
        };
        (cpu, wall)
    };
    let (cpu, wall) = time(fill, NORMAL, 100_000_000);
    println!("fill normal, 1e8 values: {cpu:.3} ns/value CPU, {wall:.3} ns/value wall");
    let mut runs: Vec<(&str, Fill)> = paths();
    runs.push(("value_at", |d, s, a, st, o| {
        for (k, v) in o.iter_mut().enumerate() {
            *v = value_at(d, s, a + k as u64 * st);
        }
    }));
    for (name, f) in runs {
        for (dname, dist) in [
            ("normal", NORMAL),
            ("uniform", UNIFORM),
            ("exponential", EXPONENTIAL),
        ] {
            let best = (0..5)
                .map(|_| time(f, dist, 2_000_000).1)
                .fold(f64::INFINITY, f64::min);
            println!("{name:>9} {dname:<12} {best:.3} ns/value (best of 5 x 2e6, wall)");
        }
    }
    println!("(checksum {check})");
}
