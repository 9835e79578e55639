//! Book-style pictures of a grid world: a policy panel (arrows whose length grows with the
//! probability, a circle for stay; forbidden cells orange, the target blue) and a value panel, side
//! by side, to PNG or SVG without a display.

use super::{ActionSet, GridWorld};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rlox_core::mdp::Mdp;
use rlox_core::plot::{ensure_font, ImageFormat, FONT_FAMILY};
use rlox_core::{Error, Result};
use std::path::Path;

const FORBIDDEN: RGBColor = RGBColor(245, 176, 65);
const TARGET: RGBColor = RGBColor(93, 173, 226);
const ARROW: RGBColor = RGBColor(30, 132, 73);
const GRID: RGBColor = RGBColor(60, 60, 60);

/// What to draw.
#[derive(Debug, Clone, Default)]
pub struct Figure<'a> {
    /// `pi(a | s)` row-major (`n_states * n_actions`); `None` draws no policy panel.
    pub policy: Option<&'a [f64]>,
    /// State values; `None` draws no value panel.
    pub values: Option<&'a [f64]>,
    /// A title above the figure.
    pub title: Option<&'a str>,
    /// Decimals of the printed values (the book prints one).
    pub decimals: usize,
}

/// Draw `figure` for `grid` into `path` (`.png` or `.svg`).
pub fn draw(grid: &GridWorld, figure: &Figure<'_>, path: &Path) -> Result<()> {
    ensure_font();
    rlox_core::checkpoint::create_parent(path)?;
    let panels = usize::from(figure.policy.is_some()) + usize::from(figure.values.is_some());
    let panels = panels.max(1);
    let cell = 64u32;
    let margin = 36u32;
    let title_h = if figure.title.is_some() { 36 } else { 8 };
    let panel_w = grid.cols() as u32 * cell + 2 * margin;
    let size = (panel_w * panels as u32, grid.rows() as u32 * cell + 2 * margin + title_h);
    let err = |m: String| Error::Plot { path: path.to_path_buf(), message: m };
    match ImageFormat::from_path(path)? {
        ImageFormat::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            paint(grid, figure, &root, cell, margin, title_h).map_err(err)?;
            root.present().map_err(|e| err(e.to_string()))
        }
        ImageFormat::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            paint(grid, figure, &root, cell, margin, title_h).map_err(err)?;
            root.present().map_err(|e| err(e.to_string()))
        }
    }
}

fn paint<DB: DrawingBackend>(
    grid: &GridWorld,
    figure: &Figure<'_>,
    root: &DrawingArea<DB, Shift>,
    cell: u32,
    margin: u32,
    title_h: u32,
) -> std::result::Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (w, _) = root.dim_in_pixel();
    if let Some(title) = figure.title {
        let style = TextStyle::from((FONT_FAMILY, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(title.to_string(), (w as i32 / 2, 8), style)).map_err(e)?;
    }
    let body = root.margin(title_h, 0, 0, 0);
    let n_panels = usize::from(figure.policy.is_some()) + usize::from(figure.values.is_some());
    let areas = body.split_evenly((1, n_panels.max(1)));
    let mut idx = 0;
    if let Some(policy) = figure.policy {
        draw_board(grid, &areas[idx], cell, margin).map_err(e)?;
        draw_policy(grid, policy, &areas[idx], cell, margin).map_err(e)?;
        idx += 1;
    }
    if let Some(values) = figure.values {
        draw_board(grid, &areas[idx], cell, margin).map_err(e)?;
        draw_values(grid, values, figure.decimals, &areas[idx], cell, margin).map_err(e)?;
        idx += 1;
    }
    if idx == 0 {
        draw_board(grid, &areas[0], cell, margin).map_err(e)?;
    }
    Ok(())
}

fn cell_origin(r: usize, c: usize, cell: u32, margin: u32) -> (i32, i32) {
    ((margin + c as u32 * cell) as i32, (margin + r as u32 * cell) as i32)
}

fn draw_board<DB: DrawingBackend>(
    grid: &GridWorld,
    area: &DrawingArea<DB, Shift>,
    cell: u32,
    margin: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let c = cell as i32;
    for s in 0..grid.n_states() {
        let (r, col) = (s / grid.cols(), s % grid.cols());
        let (x, y) = cell_origin(r, col, cell, margin);
        let fill = if s == grid.target_state() {
            Some(TARGET)
        } else if grid.is_forbidden(s) {
            Some(FORBIDDEN)
        } else {
            None
        };
        if let Some(color) = fill {
            area.draw(&Rectangle::new([(x, y), (x + c, y + c)], color.filled()))?;
        }
        area.draw(&Rectangle::new([(x, y), (x + c, y + c)], GRID.stroke_width(1)))?;
    }
    // Column numbers above, row numbers on the left, as in the book.
    let label = TextStyle::from((FONT_FAMILY, 15).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    for col in 0..grid.cols() {
        let (x, _) = cell_origin(0, col, cell, margin);
        area.draw(&Text::new(format!("{}", col + 1), (x + c / 2, margin as i32 / 2), label.clone()))?;
    }
    for r in 0..grid.rows() {
        let (_, y) = cell_origin(r, 0, cell, margin);
        area.draw(&Text::new(format!("{}", r + 1), (margin as i32 / 2, y + c / 2), label.clone()))?;
    }
    Ok(())
}

fn draw_policy<DB: DrawingBackend>(
    grid: &GridWorld,
    policy: &[f64],
    area: &DrawingArea<DB, Shift>,
    cell: u32,
    margin: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let na = grid.n_actions();
    let half = cell as f64 / 2.0;
    let style = ARROW.stroke_width(2);
    for s in 0..grid.n_states() {
        if grid.is_absorbing(s) {
            // An episode ends here: no action is ever taken, so none is drawn.
            continue;
        }
        let (x, y) = cell_origin(s / grid.cols(), s % grid.cols(), cell, margin);
        let (cx, cy) = (x as f64 + half, y as f64 + half);
        for a in 0..na {
            let p = policy[s * na + a];
            if p <= 1e-9 {
                continue;
            }
            let (dr, dc) = grid.config.actions.delta(a);
            if (dr, dc) == (0, 0) {
                let radius = (4.0 + 8.0 * p).round() as i32;
                area.draw(&Circle::new((cx as i32, cy as i32), radius, style))?;
                continue;
            }
            // Arrow length grows with the probability: 0.8 of half a cell at p = 1.
            let len = 0.8 * half * p.max(0.15);
            let (ex, ey) = (cx + dc as f64 * len, cy + dr as f64 * len);
            area.draw(&PathElement::new(vec![(cx as i32, cy as i32), (ex as i32, ey as i32)], style))?;
            let head = 7.0_f64.min(len * 0.6);
            let (px, py) = (-(dr as f64), dc as f64); // perpendicular
            let tri = vec![
                (ex as i32, ey as i32),
                ((ex - dc as f64 * head + px * head * 0.5) as i32, (ey - dr as f64 * head + py * head * 0.5) as i32),
                ((ex - dc as f64 * head - px * head * 0.5) as i32, (ey - dr as f64 * head - py * head * 0.5) as i32),
            ];
            area.draw(&Polygon::new(tri, ARROW.filled()))?;
        }
    }
    Ok(())
}

fn draw_values<DB: DrawingBackend>(
    grid: &GridWorld,
    values: &[f64],
    decimals: usize,
    area: &DrawingArea<DB, Shift>,
    cell: u32,
    margin: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT_FAMILY, 17).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    for (s, v) in values.iter().enumerate().take(grid.n_states()) {
        let (x, y) = cell_origin(s / grid.cols(), s % grid.cols(), cell, margin);
        let c = cell as i32 / 2;
        area.draw(&Text::new(format!("{v:.decimals$}"), (x + c, y + c), style.clone()))?;
    }
    Ok(())
}

/// Whether the action set draws 1-D arrows (used by callers that label figures).
pub fn is_linear(grid: &GridWorld) -> bool {
    grid.config.actions == ActionSet::Linear
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_png_and_svg() {
        let g = GridWorld::from_preset("book-5x5").unwrap();
        let policy = rlox_core::TabularPolicy::uniform(25, 5);
        let values: Vec<f64> = (0..25).map(|i| i as f64 / 3.0).collect();
        let dir = tempfile::tempdir().unwrap();
        for name in ["g.png", "g.svg"] {
            let path = dir.path().join(name);
            let fig = Figure { policy: Some(policy.table()), values: Some(&values), title: Some("t"), decimals: 1 };
            draw(&g, &fig, &path).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 500);
        }
        let svg = std::fs::read_to_string(dir.path().join("g.svg")).unwrap();
        assert!(svg.contains("\n7.7\n"), "values are written into the figure");
    }
}
