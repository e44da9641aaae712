//! Colormaps: matplotlib's maps sampled at evenly spaced anchor colours,
//! linearly interpolated between them.
//!
//! Anchors are the maps' published colours at `i / (n - 1)` (viridis and
//! magma at ninths, RdBu from ColorBrewer's 11-class scheme that matplotlib
//! interpolates, coolwarm from Moreland's diverging map). Invariant:
//! [`Colormap::color`] maps `0.0` to the first anchor and `1.0` to the last,
//! clamps outside `[0, 1]`, and is continuous in between.

use clap::ValueEnum;

/// A named colormap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Colormap {
    Viridis,
    Magma,
    Gray,
    #[value(name = "RdBu_r", alias = "rdbu_r")]
    RdBuR,
    #[value(name = "RdBu", alias = "rdbu")]
    RdBu,
    Coolwarm,
}

const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [72, 40, 120],
    [62, 73, 137],
    [49, 104, 142],
    [38, 130, 142],
    [31, 158, 137],
    [53, 183, 121],
    [110, 206, 88],
    [253, 231, 37],
];

const MAGMA: [[u8; 3]; 9] = [
    [0, 0, 4],
    [28, 16, 68],
    [79, 18, 123],
    [129, 37, 129],
    [181, 54, 122],
    [229, 80, 100],
    [251, 135, 97],
    [254, 194, 135],
    [252, 253, 191],
];

/// ColorBrewer RdBu, red (low) to blue (high), as matplotlib's `RdBu`.
const RDBU: [[u8; 3]; 11] = [
    [103, 0, 31],
    [178, 24, 43],
    [214, 96, 77],
    [244, 165, 130],
    [253, 219, 199],
    [247, 247, 247],
    [209, 229, 240],
    [146, 197, 222],
    [67, 147, 195],
    [33, 102, 172],
    [5, 48, 97],
];

const COOLWARM: [[u8; 3]; 9] = [
    [59, 76, 192],
    [98, 130, 234],
    [141, 176, 254],
    [184, 208, 249],
    [221, 221, 221],
    [245, 196, 173],
    [244, 154, 123],
    [222, 96, 77],
    [180, 4, 38],
];

const GRAY: [[u8; 3]; 2] = [[0, 0, 0], [255, 255, 255]];

impl Colormap {
    /// True for maps centred on a neutral middle colour (data spanning 0
    /// then gets a symmetric range).
    pub fn diverging(self) -> bool {
        matches!(self, Colormap::RdBu | Colormap::RdBuR | Colormap::Coolwarm)
    }

    /// The colour at `t` in `[0, 1]` (clamped; NaN gives the low end).
    pub fn color(self, t: f64) -> [u8; 3] {
        let (anchors, reversed): (&[[u8; 3]], bool) = match self {
            Colormap::Viridis => (&VIRIDIS, false),
            Colormap::Magma => (&MAGMA, false),
            Colormap::Gray => (&GRAY, false),
            Colormap::RdBu => (&RDBU, false),
            Colormap::RdBuR => (&RDBU, true),
            Colormap::Coolwarm => (&COOLWARM, false),
        };
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let t = if reversed { 1.0 - t } else { t };
        let x = t * (anchors.len() - 1) as f64;
        let i = (x.floor() as usize).min(anchors.len() - 2);
        let f = x - i as f64;
        let (a, b) = (anchors[i], anchors[i + 1]);
        let mix = |k: usize| {
            (a[k] as f64 + (b[k] as f64 - a[k] as f64) * f)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        [mix(0), mix(1), mix(2)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_middles() {
        assert_eq!(Colormap::Viridis.color(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.color(1.0), [253, 231, 37]);
        assert_eq!(Colormap::Viridis.color(0.5), [38, 130, 142]);
        assert_eq!(Colormap::Gray.color(0.5), [128, 128, 128]);
        assert_eq!(Colormap::RdBuR.color(0.0), [5, 48, 97]);
        assert_eq!(Colormap::RdBuR.color(1.0), [103, 0, 31]);
        assert_eq!(Colormap::RdBuR.color(0.5), [247, 247, 247]);
        assert_eq!(Colormap::Coolwarm.color(0.5), [221, 221, 221]);
        assert_eq!(Colormap::Magma.color(-3.0), [0, 0, 4]);
        assert_eq!(Colormap::Magma.color(7.0), [252, 253, 191]);
        assert_eq!(Colormap::Viridis.color(f64::NAN), [68, 1, 84]);
    }

    #[test]
    fn interpolation_is_continuous() {
        for map in [
            Colormap::Viridis,
            Colormap::Magma,
            Colormap::RdBuR,
            Colormap::Coolwarm,
            Colormap::Gray,
        ] {
            let mut prev = map.color(0.0);
            for i in 1..=1000 {
                let c = map.color(i as f64 / 1000.0);
                for k in 0..3 {
                    assert!(
                        (c[k] as i32 - prev[k] as i32).abs() <= 2,
                        "{map:?} jumps at {i}"
                    );
                }
                prev = c;
            }
        }
    }
}
