//! A tiny random Kimi-VL learning to name an image's colour: SFT on random answers (the form, not
//! the colours), then GRPO with the true answers (see `rlox_posttrain::colours`).
//!
//! `cargo run --release -p rlox-posttrain --example vlm_colours [-- <out dir> [seed [grpo steps [grpo lr]]]]`

use rlox_posttrain::colours::{run, ColourTaskConfig};
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "runs/vlm-colours".into()));
    let seed = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rlox-vlm/tests/fixtures/kimi_vl_tiny");
    let mut config = ColourTaskConfig { seed, ..Default::default() };
    if let Some(steps) = args.next() {
        config.grpo_steps = steps.parse()?;
    }
    if let Some(lr) = args.next() {
        config.grpo_learning_rate = lr.parse()?;
    }
    let started = std::time::Instant::now();
    let result = run(&dir, &template, &config)?;
    println!("step  greedy  sampled  (held-out accuracy, chance 0.25)");
    for (step, greedy, sampled) in &result.eval {
        println!("{step:>4}  {greedy:>6.3}  {sampled:>7.3}");
    }
    let r = &result.train_reward;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let k = (r.len() / 4).max(1);
    println!("training reward, first {k} steps {:.3}, last {k} steps {:.3}", mean(&r[..k]), mean(&r[r.len() - k..]));
    println!("{:.1} s; runs under {}", started.elapsed().as_secs_f64(), dir.display());
    Ok(())
}
