//! Redraw the curves of a finished `rlox r1-zero` run (after a change to the chart, or for a run whose
//! drawing failed): `cargo run --release --example r1_zero_plot -- runs/r1-zero-<time> [countdown]`.
//! Writes `<run>/plots/r1_zero.{png,svg}`.

use rlox_posttrain::r1_zero::draw_curves;
use rlox_posttrain::tasks::TaskKind;
use std::path::PathBuf;

fn redraw() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    let run = PathBuf::from(args.next().ok_or("usage: r1_zero_plot RUN_DIR [countdown]")?);
    let kind = if args.next().as_deref() == Some("countdown") { TaskKind::Countdown } else { TaskKind::Arithmetic };
    let grpo = std::fs::read_dir(&run)
        .map_err(|e| format!("{}: {e}", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("grpo-")))
        .ok_or_else(|| format!("{}: no grpo-* run inside", run.display()))?;
    draw_curves(&grpo.join("metrics.jsonl"), kind, &run.join("plots")).map_err(|e| e.to_string())
}

fn main() {
    match redraw() {
        Ok(png) => println!("{}", png.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
