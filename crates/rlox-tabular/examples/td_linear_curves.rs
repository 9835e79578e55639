//! TD-Linear RMSE curves of the book's Figs 8.7-8.8: the uniform policy on the 5x5 grid world
//! (r_boundary = r_forbidden = -1, r_target = 1, gamma 0.9), 500 episodes x 500 steps, alpha 0.0005,
//! w0 ~ N(0, I), polynomial features with 3, 6, 10 terms and Fourier features of order 1, 2, 3.
//!
//! ```text
//! cargo run --release -p rlox-tabular --example td_linear_curves -- [OUT.png] [SEED]
//! ```
//! Writes the chart (default `td_linear_rmse.png`), a zoom on episodes 200-500 (`td_linear_rmse_tail.png`), and prints each curve's plateau next to the RMSE of the
//! exact TD fixed point.

use rlox_core::mdp::TabularMdp;
use rlox_core::plot::{LineChart, Series};
use rlox_core::policy::TabularPolicy;
use rlox_envs::gridworld::GridWorld;
use rlox_tabular::bellman::closed_form_values;
use rlox_tabular::linear::{td_fixed_point, td_linear, FeatureSpec, TdLinearConfig};
use rlox_tabular::td::rmse;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "td_linear_rmse.png".into()));
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let mut grid = GridWorld::from_preset("book-5x5")?;
    let mdp = TabularMdp::from_mdp(&grid)?;
    let pi = TabularPolicy::uniform(25, 5);
    let truth = closed_form_values(&mdp, &pi, 0.9)?;
    let cfg = TdLinearConfig { seed, ..Default::default() };
    let specs = [
        FeatureSpec::Polynomial { degree: 1 },
        FeatureSpec::Polynomial { degree: 2 },
        FeatureSpec::Polynomial { degree: 3 },
        FeatureSpec::Fourier { order: 1 },
        FeatureSpec::Fourier { order: 2 },
        FeatureSpec::Fourier { order: 3 },
    ];
    let mut series = Vec::new();
    for spec in specs {
        let f = spec.for_grid(&grid)?;
        let res = td_linear(&mut grid, &pi, &f, &cfg, Some(&truth))?;
        let fixed = rmse(&td_fixed_point(&mdp, &pi, 0.9, &f)?.values, &truth);
        let curve = &res.history.rmse;
        let plateau = curve[curve.len() - 50..].iter().map(|p| p.1).sum::<f64>() / 50.0;
        println!("{:30} plateau (last 50 episodes) {plateau:.4}   TD fixed point {fixed:.4}", f.label());
        let points = curve.iter().enumerate().map(|(k, p)| (k as f64, p.1)).collect();
        series.push(Series { name: f.label(), points });
    }
    let chart = LineChart {
        title: format!("TD-Linear: alpha=0.0005 (seed {seed})"),
        x_label: "episode".into(),
        y_label: "state value error (RMSE)".into(),
        series,
    };
    chart.draw(&out, 900, 600)?;
    println!("wrote {}", out.display());
    // The plateaus are hard to tell apart at the full scale: a second chart zooms on episodes 200-500.
    let tail = LineChart {
        title: format!("TD-Linear: alpha=0.0005 (seed {seed}), episodes 200-500"),
        series: chart
            .series
            .iter()
            .map(|s| Series { name: s.name.clone(), points: s.points[200..].to_vec() })
            .collect(),
        ..chart
    };
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("td_linear_rmse");
    let ext = out.extension().and_then(|s| s.to_str()).unwrap_or("png");
    let tail_path = out.with_file_name(format!("{stem}_tail.{ext}"));
    tail.draw(&tail_path, 900, 600)?;
    println!("wrote {}", tail_path.display());
    Ok(())
}
