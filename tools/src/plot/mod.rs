//! `ndstream plot`: a 2-D array as a PNG heatmap with a colour bar.
//!
//! The array is downsampled while streaming: an integer stride `s` is
//! chosen so the longer side fits `--max-size`, and `x[::s, ::s]` is
//! evaluated through the engine (bounded memory, only the needed elements
//! read where the format allows). The colour range defaults to the data's
//! finite min/max, symmetric around 0 for diverging maps when the data
//! spans 0. Rendering is in [`render`], colours in [`colormap`].

pub mod colormap;
pub mod render;

use anyhow::Context;
use ndstream::{Array, IndexItem};

use crate::cli::PlotArgs;
use crate::config::{usage, ExecConfig};
use crate::expr::{evaluate, Value};
use crate::session::Session;
use colormap::Colormap;
use render::{render, Heatmap};

/// The stride that makes `rows × cols` fit in `max_size` on its longer side.
pub fn stride(rows: u64, cols: u64, max_size: u64) -> u64 {
    rows.max(cols).div_ceil(max_size.max(1)).max(1)
}

/// The colour range: given bounds win; otherwise the finite data range,
/// symmetric around 0 for a diverging map over data spanning 0.
pub fn color_range(
    data: &[f64],
    vmin: Option<f64>,
    vmax: Option<f64>,
    cmap: Colormap,
) -> (f64, f64) {
    let finite = data.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let (lo, hi) = if cmap.diverging() && vmin.is_none() && vmax.is_none() && lo < 0.0 && hi > 0.0 {
        let m = lo.abs().max(hi.abs());
        (-m, m)
    } else {
        (lo, hi)
    };
    (vmin.unwrap_or(lo), vmax.unwrap_or(hi))
}

/// Plot a 2-D array with an executor of the caller's (used by `demo`):
/// strided downsampling to `max_size`, the data's colour range.
///
/// # Errors
/// A non-2-D array, compute failures, or the PNG not being writable.
pub fn plot_array(
    exec: &ndstream::Executor,
    a: &Array,
    path: &std::path::Path,
    cmap: Colormap,
    max_size: usize,
) -> anyhow::Result<()> {
    if a.ndim() != 2 || !a.known_len() {
        return Err(usage(format!(
            "plot draws 2-D arrays, not shape {:?}",
            a.shape()
        )));
    }
    let s = stride(a.shape()[0], a.shape()[1], max_size as u64) as i64;
    let small = a.index(&[
        IndexItem::slice(None, None, s),
        IndexItem::slice(None, None, s),
    ])?;
    let block = exec.compute(&small)?;
    let (rows, cols) = (block.shape()[0], block.shape()[1]);
    let data = block.to_f64_vec();
    let (vmin, vmax) = color_range(&data, None, None, cmap);
    let img = render(&Heatmap {
        data: &data,
        rows,
        cols,
        vmin,
        vmax,
        cmap,
        max_size,
    });
    write_png(&img, path, a)
}

/// Write `img` to `path` as a PNG, safely: refused when `path` is (or lies
/// inside) a store that `a` reads, or an existing file that is not a PNG
/// (a plot never replaces data); written to a temporary file beside it and
/// renamed over it only when complete, so a failure leaves `path` as it was.
///
/// # Errors
/// The refusals above (exit 2); I/O failures writing the image (exit 1).
pub fn write_png(img: &image::RgbaImage, path: &std::path::Path, a: &Array) -> anyhow::Result<()> {
    let inputs: Vec<String> = a.sources().iter().map(|s| s.name().to_string()).collect();
    ndstream::formats::check_output_file(path, &inputs)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let mut magic = [0u8; 8];
        let is_png = meta.is_file()
            && std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
            && magic == *b"\x89PNG\r\n\x1a\n";
        if !is_png {
            return Err(usage(format!(
                "{} exists and is not a PNG image; a plot replaces only an earlier plot (choose another -o)",
                path.display()
            )));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ndstream-plot-")
        .suffix(".png.tmp")
        .tempfile_in(dir)
        .with_context(|| format!("writing {}", path.display()))?;
    img.write_to(
        &mut std::io::BufWriter::new(tmp.as_file_mut()),
        image::ImageFormat::Png,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        // A temporary file is private (0600); a plot is an ordinary file.
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Run `plot`.
///
/// # Errors
/// Bad arguments or a non-2-D array (exit 2), read or write failures (exit 1).
pub fn run(args: &PlotArgs, quiet: bool) -> anyhow::Result<()> {
    let cfg = ExecConfig::from_args(&args.exec, quiet)?;
    let mut a: Array = match (&args.src, &args.eval) {
        (src, Some(expr)) => {
            let mut bindings = Vec::new();
            if let Some(s) = src {
                bindings.push(("x", Value::Array(ndstream::open(s)?)));
            }
            match evaluate(expr, &bindings).map_err(anyhow::Error::new)? {
                Value::Array(a) => a,
                other => {
                    return Err(usage(format!(
                        "--eval must give an array, not a {}",
                        other.type_name()
                    )))
                }
            }
        }
        (Some(s), None) => crate::cmd::convert::open_input(s)?.0,
        (None, None) => return Err(usage("give an array to plot, or --eval EXPR")),
    };
    a = crate::cmd::convert::select(a, args.select.as_deref())?;
    if a.ndim() != 2 || !a.known_len() {
        return Err(usage(format!(
            "plot draws 2-D arrays, but this one has shape {:?}; pick a 2-D part with --select (e.g. --select '0, :, :')",
            a.shape()
        )));
    }
    if let (Some(lo), Some(hi)) = (args.vmin, args.vmax) {
        if lo > hi {
            return Err(usage(format!("--vmin {lo} is above --vmax {hi}")));
        }
    }
    let (rows, cols) = (a.shape()[0], a.shape()[1]);
    if rows == 0 || cols == 0 {
        return Err(usage(format!(
            "nothing to draw: the array has shape {:?}",
            a.shape()
        )));
    }
    let s = stride(rows, cols, args.max_size as u64) as i64;
    let small = a.index(&[
        IndexItem::slice(None, None, s),
        IndexItem::slice(None, None, s),
    ])?;
    let session = Session::new(&cfg, true, quiet)?;
    let block = session
        .compute_many(std::slice::from_ref(&small))?
        .remove(0);
    let (r, c) = (block.shape()[0], block.shape()[1]);
    let data = block.to_f64_vec();
    let (vmin, vmax) = color_range(&data, args.vmin, args.vmax, args.cmap);
    let img = render(&Heatmap {
        data: &data,
        rows: r,
        cols: c,
        vmin,
        vmax,
        cmap: args.cmap,
        max_size: args.max_size as usize,
    });
    write_png(&img, &args.output, &a)?;
    if !quiet {
        eprintln!(
            "wrote {} ({}x{} pixels; data {rows}x{cols}, stride {s}; colour range [{}, {}])",
            args.output.display(),
            img.width(),
            img.height(),
            crate::format::py_float(vmin, false),
            crate::format::py_float(vmax, false)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_fit() {
        assert_eq!(stride(1000, 500, 1200), 1);
        assert_eq!(stride(5760, 11520, 1200), 10);
        assert_eq!(stride(1201, 10, 1200), 2);
        for (r, c, m) in [(1u64, 1u64, 16u64), (99999, 3, 100), (4000, 4000, 1200)] {
            let s = stride(r, c, m);
            assert!(r.div_ceil(s) <= m && c.div_ceil(s) <= m);
            assert!(s == 1 || r.max(c).div_ceil(s - 1) > m);
        }
    }

    #[test]
    fn ranges() {
        let d = [-1.0, 3.0, f64::NAN];
        assert_eq!(color_range(&d, None, None, Colormap::Viridis), (-1.0, 3.0));
        assert_eq!(color_range(&d, None, None, Colormap::RdBuR), (-3.0, 3.0));
        assert_eq!(
            color_range(&d, Some(0.0), None, Colormap::RdBuR),
            (0.0, 3.0)
        );
        assert_eq!(
            color_range(&[1.0, 2.0], None, None, Colormap::Coolwarm),
            (1.0, 2.0)
        );
        assert_eq!(
            color_range(&[f64::NAN], None, None, Colormap::Gray),
            (0.0, 1.0)
        );
    }
}
