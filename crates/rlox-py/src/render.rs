//! `render_mode="rgb_array"` for the classic-control envs: Gymnasium's pictures, drawn from the env
//! state into an RGB buffer with plotters (no window, no pygame).
//!
//! The geometry, colours and frame sizes are Gymnasium's (CartPole 600x400, Acrobot 500x500,
//! MountainCar 600x400, Pendulum 500x500); the pixels are plotters' rasterisation, not pygame's, so
//! frames look the same without being equal byte for byte.

use plotters::prelude::*;
use std::f64::consts::PI;

/// An RGB frame, row-major, `height * width * 3` bytes.
pub struct Frame {
    /// Pixels.
    pub rgb: Vec<u8>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// Whether env `id` renders.
pub fn renders(id: &str) -> bool {
    matches!(id, "CartPole-v1" | "Acrobot-v1" | "MountainCar-v0" | "MountainCarContinuous-v0" | "Pendulum-v1")
}

/// The frame of env `id` in `state` (its [`rlox_core::env::SetState`] layout), or `None` if it does not render.
pub fn render(id: &str, state: &[f64]) -> Option<Frame> {
    let (w, h) = match id {
        "CartPole-v1" | "MountainCar-v0" | "MountainCarContinuous-v0" => (600u32, 400u32),
        "Acrobot-v1" | "Pendulum-v1" => (500, 500),
        _ => return None,
    };
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        // Gymnasium draws with y pointing up and flips the surface at the end.
        let up = |x: f64, y: f64| (x.round() as i32, (h as f64 - y).round() as i32);
        let drawn = match id {
            "CartPole-v1" => cartpole(&root, state, w as f64, up),
            "Acrobot-v1" => acrobot(&root, state, w as f64, up),
            "Pendulum-v1" => pendulum(&root, state, w as f64, up),
            _ => mountain_car(&root, state, w as f64, id == "MountainCarContinuous-v0", up),
        };
        // Drawing into a memory buffer cannot fail; an error would leave a partial frame, not a crash.
        let _ = drawn.and_then(|_| root.present().map_err(|e| e.to_string()));
    }
    Some(Frame { rgb, height: h as usize, width: w as usize })
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn rotate((x, y): (f64, f64), angle: f64) -> (f64, f64) {
    (x * angle.cos() - y * angle.sin(), x * angle.sin() + y * angle.cos())
}

fn polygon(area: &Area<'_>, pts: &[(i32, i32)], color: RGBColor) -> Result<(), String> {
    area.draw(&Polygon::new(pts.to_vec(), color.filled())).map_err(|e| e.to_string())
}

fn disc(area: &Area<'_>, c: (i32, i32), r: f64, color: RGBColor) -> Result<(), String> {
    area.draw(&Circle::new(c, r.round() as i32, color.filled())).map_err(|e| e.to_string())
}

fn line(area: &Area<'_>, pts: Vec<(i32, i32)>, color: RGBColor) -> Result<(), String> {
    area.draw(&PathElement::new(pts, color.stroke_width(1))).map_err(|e| e.to_string())
}

fn cartpole(area: &Area<'_>, s: &[f64], width: f64, up: impl Fn(f64, f64) -> (i32, i32)) -> Result<(), String> {
    let scale = width / (2.4 * 2.0);
    let (pole_w, pole_len, cart_w, cart_h) = (10.0, scale * 1.0, 50.0, 30.0);
    let (x, theta) = (s.first().copied().unwrap_or(0.0), s.get(2).copied().unwrap_or(0.0));
    let cart_x = x * scale + width / 2.0;
    let cart_y = 100.0;
    let (l, r, t, b) = (-cart_w / 2.0, cart_w / 2.0, cart_h / 2.0, -cart_h / 2.0);
    let cart: Vec<_> = [(l, b), (l, t), (r, t), (r, b)].iter().map(|&(px, py)| up(px + cart_x, py + cart_y)).collect();
    polygon(area, &cart, BLACK)?;
    let axle_offset = cart_h / 4.0;
    let (l, r, t, b) = (-pole_w / 2.0, pole_w / 2.0, pole_len - pole_w / 2.0, -pole_w / 2.0);
    let pole: Vec<_> = [(l, b), (l, t), (r, t), (r, b)]
        .iter()
        .map(|&p| {
            let (px, py) = rotate(p, -theta);
            up(px + cart_x, py + cart_y + axle_offset)
        })
        .collect();
    polygon(area, &pole, RGBColor(202, 152, 101))?;
    disc(area, up(cart_x, cart_y + axle_offset), pole_w / 2.0, RGBColor(129, 132, 203))?;
    line(area, vec![up(0.0, cart_y), up(width, cart_y)], BLACK)
}

fn acrobot(area: &Area<'_>, s: &[f64], width: f64, up: impl Fn(f64, f64) -> (i32, i32)) -> Result<(), String> {
    let bound = 1.0 + 1.0 + 0.2;
    let scale = width / (bound * 2.0);
    let offset = width / 2.0;
    let (t1, t2) = (s.first().copied().unwrap_or(0.0), s.get(1).copied().unwrap_or(0.0));
    let p1 = (-t1.cos() * scale, t1.sin() * scale);
    line(area, vec![up(-2.2 * scale + offset, scale + offset), up(2.2 * scale + offset, scale + offset)], BLACK)?;
    let joints = [(0.0, 0.0), (p1.1, p1.0)];
    let angles = [t1 - PI / 2.0, t1 + t2 - PI / 2.0];
    for ((jx, jy), th) in joints.into_iter().zip(angles) {
        let (l, r, t, b) = (0.0, scale, 0.1 * scale, -0.1 * scale);
        let link: Vec<_> = [(l, b), (l, t), (r, t), (r, b)]
            .iter()
            .map(|&p| {
                let (px, py) = rotate(p, th);
                up(px + jx + offset, py + jy + offset)
            })
            .collect();
        polygon(area, &link, RGBColor(0, 204, 204))?;
        disc(area, up(jx + offset, jy + offset), 0.1 * scale, RGBColor(204, 204, 0))?;
    }
    Ok(())
}

fn pendulum(area: &Area<'_>, s: &[f64], width: f64, up: impl Fn(f64, f64) -> (i32, i32)) -> Result<(), String> {
    let bound = 2.2;
    let scale = width / (bound * 2.0);
    let offset = width / 2.0;
    let th = s.first().copied().unwrap_or(0.0);
    let (rod_len, rod_w) = (1.0 * scale, 0.2 * scale);
    let (l, r, t, b) = (0.0, rod_len, rod_w / 2.0, -rod_w / 2.0);
    let rod: Vec<_> = [(l, b), (l, t), (r, t), (r, b)]
        .iter()
        .map(|&p| {
            let (px, py) = rotate(p, th + PI / 2.0);
            up(px + offset, py + offset)
        })
        .collect();
    polygon(area, &rod, RGBColor(204, 77, 77))?;
    disc(area, up(offset, offset), rod_w / 2.0, RGBColor(204, 77, 77))?;
    let (ex, ey) = rotate((rod_len, 0.0), th + PI / 2.0);
    disc(area, up(ex + offset, ey + offset), rod_w / 2.0, RGBColor(204, 77, 77))?;
    disc(area, up(offset, offset), 0.05 * scale, BLACK)
}

fn mountain_car(
    area: &Area<'_>,
    s: &[f64],
    width: f64,
    continuous: bool,
    up: impl Fn(f64, f64) -> (i32, i32),
) -> Result<(), String> {
    let (min_pos, max_pos) = (-1.2, 0.6);
    let goal = if continuous { 0.45 } else { 0.5 };
    let scale = width / (max_pos - min_pos);
    let height = |x: f64| (3.0 * x).sin() * 0.45 + 0.55;
    let pos = s.first().copied().unwrap_or(-0.5);
    let curve: Vec<_> = (0..=100)
        .map(|i| {
            let x = min_pos + (max_pos - min_pos) * i as f64 / 100.0;
            up((x - min_pos) * scale, height(x) * scale)
        })
        .collect();
    line(area, curve, BLACK)?;
    let (clearance, car_w, car_h) = (10.0, 40.0, 20.0);
    let angle = (3.0 * pos).cos();
    let base = ((pos - min_pos) * scale, clearance + height(pos) * scale);
    let (l, r, t, b) = (-car_w / 2.0, car_w / 2.0, car_h, 0.0);
    let car: Vec<_> = [(l, b), (l, t), (r, t), (r, b)]
        .iter()
        .map(|&p| {
            let (px, py) = rotate(p, angle);
            up(px + base.0, py + base.1)
        })
        .collect();
    polygon(area, &car, BLACK)?;
    for wx in [car_w / 4.0, -car_w / 4.0] {
        let (px, py) = rotate((wx, 0.0), angle);
        disc(area, up(px + base.0, py + base.1), car_h / 2.5, RGBColor(128, 128, 128))?;
    }
    let flag_x = (goal - min_pos) * scale;
    let flag_y1 = height(goal) * scale;
    let flag_y2 = flag_y1 + 50.0;
    line(area, vec![up(flag_x, flag_y1), up(flag_x, flag_y2)], BLACK)?;
    polygon(
        area,
        &[up(flag_x, flag_y2), up(flag_x, flag_y2 - 10.0), up(flag_x + 25.0, flag_y2 - 5.0)],
        RGBColor(204, 204, 0),
    )
}
