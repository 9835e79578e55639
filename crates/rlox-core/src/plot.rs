//! Headless line charts (PNG or SVG by file extension) with an embedded font.
//!
//! plotters renders text through `ab_glyph`; we embed DejaVu Sans (see `assets/fonts/DejaVu-LICENSE.txt`)
//! so figures look the same on a machine without any system fonts.

use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// The font family name to use in plotters text styles after [`ensure_font`].
pub const FONT_FAMILY: &str = "sans-serif";

/// Register the embedded font with plotters (idempotent).
pub fn ensure_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            let _ = plotters::style::register_font(FONT_FAMILY, style, FONT);
        }
    });
}

/// Output format chosen from a path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// `.png`
    Png,
    /// `.svg`
    Svg,
}

impl ImageFormat {
    /// The format for `path`, or an error naming the extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("png") => Ok(ImageFormat::Png),
            Some("svg") => Ok(ImageFormat::Svg),
            other => Err(Error::Plot {
                path: path.to_path_buf(),
                message: format!("unsupported image extension {other:?}; use .png or .svg"),
            }),
        }
    }
}

/// One named line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// A titled chart with several series.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl LineChart {
    /// Draw to `path` (PNG or SVG), `width` x `height` pixels.
    pub fn draw(&self, path: &Path, width: u32, height: u32) -> Result<()> {
        ensure_font();
        crate::checkpoint::create_parent(path)?;
        let to_err = |e: String| Error::Plot { path: path.to_path_buf(), message: e };
        match ImageFormat::from_path(path)? {
            ImageFormat::Png => {
                let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
                self.draw_on(&root).map_err(to_err)?;
                root.present().map_err(|e| to_err(e.to_string()))
            }
            ImageFormat::Svg => {
                let root = SVGBackend::new(path, (width, height)).into_drawing_area();
                self.draw_on(&root).map_err(to_err)?;
                root.present().map_err(|e| to_err(e.to_string()))
            }
        }
    }

    /// The corner (or the middle of the right edge) whose legend box covers the fewest data points, so
    /// the legend hides as little of the curves as it can. The box is estimated as 45% of the width and
    /// 6% of the height per series.
    fn legend_position(&self, x0: f64, x1: f64, y0: f64, y1: f64) -> SeriesLabelPosition {
        let (w, h) = (0.45, (0.06 * self.series.len() as f64).min(0.9));
        let candidates = [
            (SeriesLabelPosition::UpperRight, 1.0 - w, 1.0 - h),
            (SeriesLabelPosition::LowerRight, 1.0 - w, 0.0),
            (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - h),
            (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
            (SeriesLabelPosition::MiddleRight, 1.0 - w, 0.5 - h / 2.0),
        ];
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)))
            .collect();
        let covered = |bx: f64, by: f64| {
            points.iter().filter(|(u, v)| (bx..=bx + w).contains(u) && (by..=by + h).contains(v)).count()
        };
        candidates
            .into_iter()
            .min_by_key(|(_, bx, by)| covered(*bx, *by))
            .map(|c| c.0)
            .unwrap_or(SeriesLabelPosition::UpperRight)
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> std::result::Result<(), String> {
        let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
        root.fill(&WHITE).map_err(e)?;
        let pts = self.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT_FAMILY, 14))
            .x_label_formatter(&|x| tick_label(*x))
            .y_label_formatter(&|y| tick_label(*y))
            .draw()
            .map_err(e)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()),
                    color.stroke_width(2),
                ))
                .map_err(e)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        if self.series.len() > 1 {
            let position = self.legend_position(x0, x1, y0 - pad, y1 + pad);
            chart
                .configure_series_labels()
                .position(position)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FONT_FAMILY, 14))
                .draw()
                .map_err(e)?;
        }
        Ok(())
    }
}

/// Tick labels without a trailing ".0" on whole numbers and with few decimals otherwise.
fn tick_label(x: f64) -> String {
    if x.fract().abs() < 1e-9 || x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let chart = LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series { name: "a".into(), points: vec![(0.0, 1.0), (1.0, 2.0)] }],
        };
        for name in ["c.png", "c.svg"] {
            let p = dir.path().join(name);
            chart.draw(&p, 320, 240).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 100);
        }
        assert!(chart.draw(&dir.path().join("c.gif"), 10, 10).is_err());
    }
}
