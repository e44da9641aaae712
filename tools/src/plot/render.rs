//! Drawing a heatmap PNG: the data as coloured pixels, a colour bar on the
//! right, and tick labels in a tiny built-in 5×7 bitmap font.
//!
//! Layout (pixels): a margin of [`PAD`] all round; the heatmap (data
//! upscaled by an integer factor when it is small); a [`GAP`]; the bar,
//! [`BAR_W`] wide and as tall as the heatmap (at least [`MIN_BAR_H`]);
//! ticks and labels in a fixed-width column, so the image size depends only
//! on the data's shape: see [`image_size`]. Row 0 of the data is at the top
//! (matplotlib's `imshow` default). NaN pixels are transparent.

use image::{Rgba, RgbaImage};

use super::colormap::Colormap;

/// Margin around everything.
pub const PAD: u32 = 10;
/// Space between the heatmap and the bar.
pub const GAP: u32 = 20;
/// Colour bar width.
pub const BAR_W: u32 = 20;
/// Shortest colour bar.
pub const MIN_BAR_H: u32 = 100;
/// Tick mark length.
const TICK: u32 = 4;
/// Characters a tick label may use.
const LABEL_CHARS: u32 = 9;
/// Glyph cell: 5 pixels and a space.
const CELL_W: u32 = 6;
const GLYPH_H: u32 = 7;
/// Small arrays are enlarged until their longer side reaches this.
pub const MIN_SIDE: usize = 256;

/// What to draw.
#[derive(Debug)]
pub struct Heatmap<'a> {
    /// Row-major values, `rows * cols` of them.
    pub data: &'a [f64],
    pub rows: usize,
    pub cols: usize,
    pub vmin: f64,
    pub vmax: f64,
    pub cmap: Colormap,
    /// The longest side the heatmap itself may have.
    pub max_size: usize,
}

/// The integer factor a `rows × cols` heatmap is enlarged by.
pub fn upscale(rows: usize, cols: usize, max_size: usize) -> usize {
    let side = rows.max(cols).max(1);
    if side >= MIN_SIDE {
        return 1;
    }
    MIN_SIDE.div_ceil(side).min(max_size / side).max(1)
}

/// The PNG's (width, height) for data of `rows × cols`.
pub fn image_size(rows: usize, cols: usize, max_size: usize) -> (u32, u32) {
    let k = upscale(rows, cols, max_size);
    let (w, h) = ((cols * k) as u32, (rows * k) as u32);
    let width = PAD + w + GAP + BAR_W + TICK + 3 + LABEL_CHARS * CELL_W + PAD;
    let height = PAD + h.max(MIN_BAR_H) + PAD;
    (width, height)
}

/// Five evenly spaced tick values from `vmin` to `vmax`.
pub fn ticks(vmin: f64, vmax: f64) -> Vec<f64> {
    if vmin == vmax {
        return vec![vmin];
    }
    (0..5)
        .map(|i| vmin + (vmax - vmin) * i as f64 / 4.0)
        .collect()
}

/// A tick label of at most [`LABEL_CHARS`] characters: positional for
/// moderate magnitudes, otherwise scientific (`1.5e-07`).
pub fn tick_label(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    let a = v.abs();
    let s = if (1e-3..1e5).contains(&a) {
        let prec = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.prec$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.')
        } else {
            m
        };
        format!("{m}e{e}")
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// 5×7 glyphs, one byte per row, bit 4 leftmost.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        'e' => [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        _ => return None,
    })
}

fn put(img: &mut RgbaImage, x: i64, y: i64, c: Rgba<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Draw `text` with its top-left corner at (x, y); unknown characters are skipped.
pub fn draw_text(img: &mut RgbaImage, x: i64, y: i64, text: &str, color: Rgba<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let Some(rows) = glyph(ch) else { continue };
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    put(img, x + i as i64 * CELL_W as i64 + col, y + r as i64, color);
                }
            }
        }
    }
}

/// Normalise `v` into `[0, 1]` over `[vmin, vmax]` (0.5 for a flat range).
fn norm(v: f64, vmin: f64, vmax: f64) -> f64 {
    if vmax > vmin {
        (v - vmin) / (vmax - vmin)
    } else {
        0.5
    }
}

/// Draw the heatmap and its colour bar.
pub fn render(h: &Heatmap) -> RgbaImage {
    let (width, height) = image_size(h.rows, h.cols, h.max_size);
    let mut img = RgbaImage::from_pixel(width, height, Rgba([255, 255, 255, 255]));
    let k = upscale(h.rows, h.cols, h.max_size);
    for r in 0..h.rows {
        for c in 0..h.cols {
            let v = h.data.get(r * h.cols + c).copied().unwrap_or(f64::NAN);
            let px = if v.is_nan() {
                Rgba([0, 0, 0, 0])
            } else {
                let [cr, cg, cb] = h.cmap.color(norm(v, h.vmin, h.vmax));
                Rgba([cr, cg, cb, 255])
            };
            for dy in 0..k {
                for dx in 0..k {
                    put(
                        &mut img,
                        (PAD as usize + c * k + dx) as i64,
                        (PAD as usize + r * k + dy) as i64,
                        px,
                    );
                }
            }
        }
    }
    // Colour bar: top is vmax.
    let bar_h = ((h.rows * k) as u32).max(MIN_BAR_H);
    let bar_x = PAD + (h.cols * k) as u32 + GAP;
    for y in 0..bar_h {
        let t = 1.0 - y as f64 / (bar_h - 1).max(1) as f64;
        let [r, g, b] = h.cmap.color(t);
        for x in 0..BAR_W {
            put(
                &mut img,
                (bar_x + x) as i64,
                (PAD + y) as i64,
                Rgba([r, g, b, 255]),
            );
        }
    }
    let black = Rgba([0, 0, 0, 255]);
    for x in 0..BAR_W {
        put(&mut img, (bar_x + x) as i64, PAD as i64 - 1, black);
        put(&mut img, (bar_x + x) as i64, (PAD + bar_h) as i64, black);
    }
    for y in 0..bar_h {
        put(&mut img, bar_x as i64 - 1, (PAD + y) as i64, black);
        put(&mut img, (bar_x + BAR_W) as i64, (PAD + y) as i64, black);
    }
    for t in ticks(h.vmin, h.vmax) {
        let f = norm(t, h.vmin, h.vmax);
        let y = PAD as i64 + ((1.0 - f) * (bar_h - 1) as f64).round() as i64;
        for dx in 0..TICK {
            put(&mut img, (bar_x + BAR_W + 1 + dx) as i64, y, black);
        }
        let label = tick_label(t);
        draw_text(
            &mut img,
            (bar_x + BAR_W + TICK + 3) as i64,
            y - (GLYPH_H / 2) as i64,
            &label,
            black,
        );
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short_and_readable() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1.0), "1");
        assert_eq!(tick_label(-2.5), "-2.5");
        assert_eq!(tick_label(0.00123), "0.00123");
        assert_eq!(tick_label(12345.6), "12346");
        assert_eq!(tick_label(1.5e-7), "1.5e-7");
        assert_eq!(tick_label(-1.234e15), "-1.23e15");
        for v in [1e300, -1e-300, 99999.99, -0.0012345, 123.456] {
            let l = tick_label(v);
            assert!(l.len() <= LABEL_CHARS as usize, "{v}: {l}");
            assert!(l.chars().all(|c| glyph(c).is_some()), "{l}");
        }
    }

    #[test]
    fn sizes_and_pixels() {
        assert_eq!(upscale(1000, 500, 1200), 1);
        assert_eq!(upscale(10, 5, 1200), 26);
        assert_eq!(upscale(10, 5, 100), 10);
        let data = [0.0, 1.0, f64::NAN, 0.5];
        let h = Heatmap {
            data: &data,
            rows: 2,
            cols: 2,
            vmin: 0.0,
            vmax: 1.0,
            cmap: Colormap::Gray,
            max_size: 1200,
        };
        let img = render(&h);
        assert_eq!((img.width(), img.height()), image_size(2, 2, 1200));
        let k = upscale(2, 2, 1200) as u32;
        assert_eq!(img.get_pixel(PAD, PAD), &Rgba([0, 0, 0, 255]));
        assert_eq!(img.get_pixel(PAD + k, PAD), &Rgba([255, 255, 255, 255]));
        assert_eq!(img.get_pixel(PAD, PAD + k)[3], 0);
        assert_eq!(img.get_pixel(PAD + k, PAD + k), &Rgba([128, 128, 128, 255]));
        // The bar runs from vmax (white) at the top to vmin (black) at the bottom.
        let bar_x = PAD + 2 * k + GAP + 5;
        assert_eq!(img.get_pixel(bar_x, PAD), &Rgba([255, 255, 255, 255]));
        assert_eq!(img.get_pixel(bar_x, PAD + 2 * k - 1), &Rgba([0, 0, 0, 255]));
        // Some label pixels are drawn.
        let label_x = PAD + 2 * k + GAP + BAR_W + TICK + 3;
        let inked = (label_x..img.width())
            .flat_map(|x| (0..img.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y)[0] == 0)
            .count();
        assert!(inked > 20);
    }
}
