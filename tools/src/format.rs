//! Printing results the way NumPy prints them, and as JSON.
//!
//! - Scalars (0-d results) print as Python/NumPy scalars: the shortest
//!   string that reads back to the same float (`199984202.21319342`,
//!   `1e-05`, `1e+16`, `nan`), integers plainly, booleans as `True`/`False`.
//! - Arrays follow `numpy.array2string` with the default options: floats in
//!   positional or scientific notation chosen from the data's range, at most
//!   8 fractional digits, columns aligned on the decimal point, lines
//!   wrapped at 75 characters, and arrays of more than 1000 elements
//!   summarised with `...` keeping 3 items at each edge.
//! - JSON: `{"shape": [...], "dtype": "float64", "data": nested lists}`,
//!   non-finite floats as `null`.

use ndstream::{with_block, Block, DType};
use serde_json::json;

const LINE_WIDTH: usize = 75;
const THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;
const PRECISION: usize = 8;

/// Shortest round-trip digits and decimal exponent of a finite non-zero
/// value: `(digits, exp)` with value = 0.d1d2d3... × 10^(exp+1), i.e. exp
/// is the exponent of the first digit.
fn shortest_digits(v: f64, is_f32: bool) -> (String, i32) {
    let s = if is_f32 {
        format!("{:e}", v.abs() as f32)
    } else {
        format!("{:e}", v.abs())
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0').to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    (digits, exp.parse().unwrap_or(0))
}

/// Python's `repr(float)` (also NumPy's `str` of a float64 scalar; for
/// float32, the shortest float32 digits).
pub fn py_float(v: f64, is_f32: bool) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exp) = shortest_digits(v, is_f32);
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mant}e{esign}{:02}", exp.abs());
    }
    format!("{sign}{}", positional(&digits, exp, true))
}

/// Digits placed around the decimal point; `point_zero` writes `1.0` for
/// integers (Python) instead of `1.` (NumPy arrays).
fn positional(digits: &str, exp: i32, point_zero: bool) -> String {
    let n = digits.len() as i32;
    let (int, frac) = if exp < 0 {
        (
            "0".to_string(),
            format!("{}{digits}", "0".repeat((-exp - 1) as usize)),
        )
    } else if exp + 1 >= n {
        (
            format!("{digits}{}", "0".repeat((exp + 1 - n) as usize)),
            String::new(),
        )
    } else {
        let (a, b) = digits.split_at((exp + 1) as usize);
        (a.to_string(), b.to_string())
    };
    if frac.is_empty() && point_zero {
        format!("{int}.0")
    } else {
        format!("{int}.{frac}")
    }
}

/// A float in positional notation with at most `PRECISION` fractional
/// digits (shortest round-trip otherwise), trailing zeros trimmed: `(int, frac)`.
fn positional_parts(v: f64, is_f32: bool) -> (String, String) {
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let s = if v == 0.0 {
        "0.".to_string()
    } else {
        let (digits, exp) = shortest_digits(v, is_f32);
        let frac_len = (digits.len() as i32 - exp - 1).max(0) as usize;
        if frac_len > PRECISION {
            let r = format!("{:.*}", PRECISION, v.abs());
            let r = r.trim_end_matches('0').to_string();
            if r.contains('.') {
                r
            } else {
                format!("{r}.")
            }
        } else {
            positional(&digits, exp, false)
        }
    };
    let (i, f) = s.split_once('.').unwrap_or((&s, ""));
    (format!("{sign}{i}"), f.to_string())
}

/// A float in scientific notation with the shortest mantissa (at most
/// `PRECISION` fractional digits): `(int, frac, exponent)`.
fn scientific_parts(v: f64, is_f32: bool) -> (String, String, i32) {
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return (format!("{sign}0"), String::new(), 0);
    }
    let (mut digits, mut exp) = shortest_digits(v, is_f32);
    if digits.len() > PRECISION + 1 {
        let r = format!("{:.*e}", PRECISION, v.abs());
        let (m, e) = r.split_once('e').unwrap_or((&r, "0"));
        digits = m
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .trim_end_matches('0')
            .to_string();
        if digits.is_empty() {
            digits = "0".into();
        }
        exp = e.parse().unwrap_or(exp);
    }
    let (first, rest) = digits.split_at(1);
    (format!("{sign}{first}"), rest.to_string(), exp)
}

/// How every element of one array is formatted (NumPy's `FloatingFormat`,
/// `IntegerFormat`, `BoolFormat`).
enum Format {
    Bool,
    Int { width: usize },
    Float(FloatFormat),
}

struct FloatFormat {
    is_f32: bool,
    exp: bool,
    pad_left: usize,
    pad_right: usize,
    /// Scientific: digits after the point, and exponent digits.
    precision: usize,
    exp_size: usize,
}

impl FloatFormat {
    fn new(vals: &[f64], is_f32: bool) -> FloatFormat {
        let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        let nonzero: Vec<f64> = finite
            .iter()
            .map(|v| v.abs())
            .filter(|&v| v != 0.0)
            .collect();
        let mut exp = false;
        if !nonzero.is_empty() {
            let max = nonzero.iter().copied().fold(f64::MIN, f64::max);
            let min = nonzero.iter().copied().fold(f64::MAX, f64::min);
            exp = max >= 1e8 || min < 1e-4 || max / min > 1e3;
        }
        let mut f = FloatFormat {
            is_f32,
            exp,
            pad_left: 0,
            pad_right: 0,
            precision: 0,
            exp_size: 0,
        };
        if finite.is_empty() {
            f.exp = false;
        } else if exp {
            let parts: Vec<_> = finite
                .iter()
                .map(|&v| scientific_parts(v, is_f32))
                .collect();
            f.precision = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
            f.exp_size = parts
                .iter()
                .map(|p| p.2.unsigned_abs().to_string().len())
                .max()
                .unwrap_or(1)
                .max(2);
            f.pad_left = parts.iter().map(|p| p.0.len()).max().unwrap_or(0);
            f.pad_right = f.exp_size + 2 + f.precision;
        } else {
            let parts: Vec<_> = finite
                .iter()
                .map(|&v| positional_parts(v, is_f32))
                .collect();
            f.pad_left = parts.iter().map(|p| p.0.len()).max().unwrap_or(0);
            f.pad_right = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
        }
        if finite.len() != vals.len() {
            let neg_inf = vals.iter().any(|v| v.is_infinite() && *v < 0.0) as usize;
            let offset = f.pad_right + 1;
            f.pad_left = f
                .pad_left
                .max(3usize.saturating_sub(offset))
                .max((3 + neg_inf).saturating_sub(offset));
        }
        f
    }

    fn format(&self, v: f64) -> String {
        if !v.is_finite() {
            let s = if v.is_nan() {
                "nan"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            return format!("{s:>width$}", width = self.pad_left + self.pad_right + 1);
        }
        if self.exp {
            let (i, f, e) = scientific_parts(v, self.is_f32);
            let esign = if e < 0 { '-' } else { '+' };
            format!(
                "{i:>pl$}.{f:0<p$}e{esign}{:0>es$}",
                e.unsigned_abs(),
                pl = self.pad_left,
                p = self.precision,
                es = self.exp_size
            )
        } else {
            let (i, f) = positional_parts(v, self.is_f32);
            format!("{i:>pl$}.{f:<pr$}", pl = self.pad_left, pr = self.pad_right)
        }
    }
}

/// The indices along an axis of length `n` that a summarised print shows.
fn visible(n: usize, summarize: bool) -> Vec<usize> {
    if summarize && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS).chain(n - EDGE_ITEMS..n).collect()
    } else {
        (0..n).collect()
    }
}

/// Flat C-order indices of the elements a (possibly summarised) print shows.
fn visible_flat(shape: &[usize], summarize: bool) -> Vec<usize> {
    let mut out = vec![0usize];
    for &n in shape {
        let vis = visible(n, summarize);
        out = out
            .iter()
            .flat_map(|&base| vis.iter().map(move |&i| base * n + i))
            .collect();
    }
    out
}

/// One element as text under `fmt`.
fn element(b: &Block, flat: usize, fmt: &Format) -> String {
    with_block!(b, a, T => {
        let v = a.iter().nth(flat);
        match (fmt, v) {
            (Format::Bool, Some(x)) => {
                if <T as ndstream::Element>::to_f64(*x) != 0.0 { " True".to_string() } else { "False".to_string() }
            }
            (Format::Int { width }, Some(x)) => format!("{:>width$}", x.to_string(), width = *width),
            (Format::Float(f), Some(x)) => f.format(<T as ndstream::Element>::to_f64(*x)),
            (_, None) => String::new(),
        }
    })
}

/// `numpy.array2string(a)` (what `print(a)` shows) for any block.
pub fn format_array(b: &Block) -> String {
    let b = b.clone().into_standard_layout();
    if b.ndim() == 0 {
        return format_scalar(&b);
    }
    if b.is_empty() {
        return "[]".into();
    }
    let shape = b.shape().to_vec();
    let summarize = b.len() > THRESHOLD;
    let flat = visible_flat(&shape, summarize);
    let all = b.to_f64_vec();
    let fmt = match b.dtype() {
        DType::Bool => Format::Bool,
        DType::F32 | DType::F64 => {
            let vals: Vec<f64> = flat.iter().map(|&i| all[i]).collect();
            Format::Float(FloatFormat::new(&vals, b.dtype() == DType::F32))
        }
        _ => {
            let width = with_block!(&b, a, _T => {
                let sl = a.as_slice().unwrap_or(&[]);
                flat.iter().filter_map(|&i| sl.get(i)).map(|x| x.to_string().len()).max().unwrap_or(1)
            });
            Format::Int { width }
        }
    };
    // Pre-format the visible elements once (nth() on an iterator is O(n)).
    let texts: std::collections::HashMap<usize, String> = with_block!(&b, a, T => {
        let sl = a.as_slice().unwrap_or(&[]);
        flat.iter()
            .filter_map(|&i| sl.get(i).map(|x| (i, match &fmt {
                Format::Bool => if <T as ndstream::Element>::to_f64(*x) != 0.0 { " True".to_string() } else { "False".to_string() },
                Format::Int { width } => format!("{:>width$}", x.to_string(), width = *width),
                Format::Float(f) => f.format(<T as ndstream::Element>::to_f64(*x)),
            })))
            .collect()
    });
    let get = |i: usize| {
        texts
            .get(&i)
            .cloned()
            .unwrap_or_else(|| element(&b, i, &fmt))
    };
    let strides: Vec<usize> = (0..shape.len())
        .map(|d| shape[d + 1..].iter().product())
        .collect();
    let ctx = Layout {
        shape: &shape,
        strides: &strides,
        summarize,
        get: &get,
    };
    ctx.recurse(0, 0, " ", LINE_WIDTH)
}

struct Layout<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    summarize: bool,
    get: &'a dyn Fn(usize) -> String,
}

impl Layout<'_> {
    /// NumPy's `_formatArray` recursion for the sub-array at `offset` on `axis`.
    fn recurse(&self, axis: usize, offset: usize, hanging: &str, width: usize) -> String {
        let ndim = self.shape.len();
        if axis == ndim {
            return (self.get)(offset);
        }
        let left = ndim - axis;
        let next_hanging = format!("{hanging} ");
        let next_width = width.saturating_sub(1);
        let n = self.shape[axis];
        let show_summary = self.summarize && 2 * EDGE_ITEMS < n;
        let items: Vec<Option<usize>> = if show_summary {
            (0..EDGE_ITEMS)
                .map(Some)
                .chain(std::iter::once(None))
                .chain((n - EDGE_ITEMS..n).map(Some))
                .collect()
        } else {
            (0..n).map(Some).collect()
        };
        let child = |i: usize| {
            self.recurse(
                axis + 1,
                offset + i * self.strides[axis],
                &next_hanging,
                next_width,
            )
        };
        let mut s = String::new();
        if left == 1 {
            let elem_width = width.saturating_sub(1);
            let mut line = hanging.to_string();
            let count = items.len();
            for (k, it) in items.iter().enumerate() {
                let word = match it {
                    Some(i) => child(*i),
                    None => "...".to_string(),
                };
                let needs_wrap = line.len() + word.len() > elem_width && line.len() > hanging.len();
                if needs_wrap {
                    s.push_str(line.trim_end());
                    s.push('\n');
                    line = hanging.to_string();
                }
                line.push_str(&word);
                if k + 1 < count {
                    line.push(' ');
                }
            }
            s.push_str(&line);
        } else {
            let line_sep = "\n".repeat(left - 1);
            let count = items.len();
            for (k, it) in items.iter().enumerate() {
                let nested = match it {
                    Some(i) => child(*i),
                    None => "...".to_string(),
                };
                s.push_str(hanging);
                s.push_str(&nested);
                if k + 1 < count {
                    s.push_str(&line_sep);
                }
            }
        }
        format!("[{}]", &s[hanging.len().min(s.len())..])
    }
}

/// A 0-d block as a NumPy scalar prints.
pub fn format_scalar(b: &Block) -> String {
    let is_f32 = b.dtype() == DType::F32;
    with_block!(b, a, T => {
        match a.iter().next() {
            None => String::new(),
            Some(x) => match <T as ndstream::Element>::DTYPE {
                DType::Bool => if <T as ndstream::Element>::to_f64(*x) != 0.0 { "True".into() } else { "False".into() },
                DType::F32 | DType::F64 => py_float(<T as ndstream::Element>::to_f64(*x), is_f32),
                _ => x.to_string(),
            },
        }
    })
}

/// A block as `{"shape": [...], "dtype": "...", "data": ...}`.
pub fn block_json(b: &Block) -> serde_json::Value {
    let b = b.clone().into_standard_layout();
    let flat: Vec<serde_json::Value> = with_block!(&b, a, T => {
        a.iter().map(|x| {
            let v = <T as ndstream::Element>::to_f64(*x);
            match <T as ndstream::Element>::DTYPE {
                DType::Bool => json!(v != 0.0),
                DType::F64 => serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number),
                DType::F32 => {
                    // Shortest float32 digits, read back as f64, print as people expect (0.1, not 0.10000000149).
                    let short: f64 = format!("{}", v as f32).parse().unwrap_or(v);
                    serde_json::Number::from_f64(short).map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
                _ => serde_json::from_str(&x.to_string()).unwrap_or(serde_json::Value::Null),
            }
        }).collect()
    });
    let data = nest(&flat, b.shape());
    json!({"shape": b.shape(), "dtype": b.dtype().name(), "data": data})
}

fn nest(flat: &[serde_json::Value], shape: &[usize]) -> serde_json::Value {
    match shape.split_first() {
        None => flat.first().cloned().unwrap_or(serde_json::Value::Null),
        Some((&n, rest)) => {
            let step: usize = rest.iter().product();
            serde_json::Value::Array(
                (0..n)
                    .map(|i| nest(&flat[i * step..(i + 1) * step], rest))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, ArrayD, IxDyn};

    fn f64s(v: &[f64]) -> String {
        format_array(&Block::from(arr1(v).into_dyn()))
    }

    #[test]
    fn python_float_repr() {
        // Values and their CPython repr.
        let cases: [(f64, &str); 14] = [
            (199984202.21319342, "199984202.21319342"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.5e300, "1.5e+300"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
            (123.456, "123.456"),
            (1.0 / 3.0, "0.3333333333333333"),
        ];
        for (v, want) in cases {
            assert_eq!(py_float(v, false), want, "{v:e}");
        }
        assert_eq!(py_float(0.1f32 as f64, true), "0.1");
    }

    #[test]
    fn numpy_array_printing() {
        // Expected strings are what NumPy 2 prints for the same arrays.
        assert_eq!(f64s(&[1.0, 2.0, 3.0]), "[1. 2. 3.]");
        assert_eq!(f64s(&[1.0, 22.5, -3.25]), "[ 1.   22.5  -3.25]");
        assert_eq!(f64s(&[1.0 / 3.0, 2.0]), "[0.33333333 2.        ]");
        assert_eq!(f64s(&[1e-5, 2.5e3]), "[1.0e-05 2.5e+03]");
        assert_eq!(f64s(&[1e10, 1.0]), "[1.e+10 1.e+00]");
        assert_eq!(f64s(&[0.0, f64::NAN, 1.5]), "[0.  nan 1.5]");
        assert_eq!(f64s(&[f64::NEG_INFINITY, 1.0]), "[-inf   1.]");
        assert_eq!(f64s(&[]), "[]");
        let ints = Block::from(arr1(&[1i64, -20, 300]).into_dyn());
        assert_eq!(format_array(&ints), "[  1 -20 300]");
        let bools = Block::from(arr1(&[true, false]).into_dyn());
        assert_eq!(format_array(&bools), "[ True False]");
        let m = Block::from(arr2(&[[1.0, 2.0], [3.0, 4.5]]).into_dyn());
        assert_eq!(format_array(&m), "[[1.  2. ]\n [3.  4.5]]");
        let cube = Block::from(
            ArrayD::from_shape_vec(IxDyn(&[2, 1, 2]), vec![1i32, 2, 3, 4]).unwrap_or_default(),
        );
        assert_eq!(format_array(&cube), "[[[1 2]]\n\n [[3 4]]]");
    }

    #[test]
    fn wrapping_and_summaries() {
        let v: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let want = "[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n 18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.]";
        assert_eq!(f64s(&v), want);
        let big: Vec<i64> = (0..2000).collect();
        assert_eq!(
            format_array(&Block::from(arr1(&big).into_dyn())),
            "[   0    1    2 ... 1997 1998 1999]"
        );
        let m =
            ArrayD::from_shape_vec(IxDyn(&[100, 100]), (0..10000i64).collect()).unwrap_or_default();
        let want = "[[   0    1    2 ...   97   98   99]\n [ 100  101  102 ...  197  198  199]\n [ 200  201  202 ...  297  298  299]\n ...\n [9700 9701 9702 ... 9797 9798 9799]\n [9800 9801 9802 ... 9897 9898 9899]\n [9900 9901 9902 ... 9997 9998 9999]]";
        assert_eq!(format_array(&Block::from(m)), want);
    }

    #[test]
    fn scalars_and_json() {
        let s = Block::from(ndarray::arr0(2.5f64).into_dyn());
        assert_eq!(format_array(&s), "2.5");
        let s = Block::from(ndarray::arr0(7i64).into_dyn());
        assert_eq!(format_scalar(&s), "7");
        let j = block_json(&Block::from(
            arr2(&[[1.0f32, 0.1], [f32::NAN, 2.0]]).into_dyn(),
        ));
        assert_eq!(
            j.to_string(),
            r#"{"shape":[2,2],"dtype":"float32","data":[[1.0,0.1],[null,2.0]]}"#
        );
        let j = block_json(&Block::from(ndarray::arr0(3u8).into_dyn()));
        assert_eq!(j.to_string(), r#"{"shape":[],"dtype":"uint8","data":3}"#);
    }
}
