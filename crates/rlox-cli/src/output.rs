//! Output formats shared by the subcommands.

use clap::ValueEnum;

/// How a subcommand reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object on stdout, nothing else there.
    Json,
}

/// Print `value` as one line of JSON.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Keep at most `max` evenly spaced items (always the first and the last).
pub fn thin<T: Clone>(items: &[T], max: usize) -> Vec<T> {
    if items.len() <= max || max < 2 {
        return items.to_vec();
    }
    let step = (items.len() - 1) as f64 / (max - 1) as f64;
    (0..max).map(|i| items[((i as f64 * step).round() as usize).min(items.len() - 1)].clone()).collect()
}

/// Round for display in JSON (keeps the numbers readable; full precision is in the run files).
pub fn round_vec(v: &[f64], decimals: i32) -> Vec<f64> {
    let f = 10f64.powi(decimals);
    v.iter().map(|x| (x * f).round() / f).collect()
}
