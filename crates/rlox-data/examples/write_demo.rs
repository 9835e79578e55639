//! Write demo data for the Spark/Hive/DuckDB/datasets comparisons and the benchmark:
//!
//! ```text
//! cargo run --release -p rlox-data --example write_demo -- OUT_DIR [N_COMPLETIONS=1000] [GROUP=16] [STEPS=10]
//! ```
//!
//! * `OUT_DIR/rollouts/run=demo/step=<s>/part-00000.parquet`: GRPO groups of `GROUP` completions with
//!   rewards `accuracy`, `format` (deterministic pseudo-random), some groups with no completions;
//! * `OUT_DIR/prefs/` a Hugging Face dataset directory (train and test splits);
//! * `OUT_DIR/episodes.parquet`: a few RL episodes.
//!
//! Prints the seconds spent writing the rollouts.

use rlox_data::hf::write_hf_dataset;
use rlox_data::records::*;
use rlox_data::rollouts::RolloutStore;
use rlox_data::schema::preference_schema;
use rlox_data::write::{write_parquet, WriteOptions};
use std::time::Instant;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(args.get(1).ok_or("usage: write_demo OUT_DIR [N] [GROUP] [STEPS]")?);
    let n: usize = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let group: usize = args.get(3).map_or(Ok(16), |s| s.parse())?;
    let steps: usize = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let mut rng = Lcg(42);
    let store = RolloutStore::new(out.join("rollouts"), "demo", &["accuracy", "format"], WriteOptions::default())?;
    let groups_per_step = (n / group / steps).max(1);
    let t = Instant::now();
    let mut written = 0;
    for step in 0..steps as i64 {
        let groups: Vec<RolloutGroup> = (0..groups_per_step)
            .map(|g| {
                // Every 97th group is empty: OUTER semantics show up in the comparisons.
                let k = if g % 97 == 5 { 0 } else { group };
                let completions: Vec<Completion> = (0..k)
                    .map(|c| {
                        let acc = (rng.next() % 2) as f64;
                        let fmt = (rng.next() % 4) as f64 / 4.0;
                        let toks = 8 + (rng.next() % 120) as i64;
                        Completion {
                            text: format!("step {step} prompt {g} completion {c}: the answer is {}", rng.next() % 1000),
                            num_tokens: toks,
                            rewards: vec![acc, fmt],
                            reward: acc + fmt,
                            advantage: 0.0,
                        }
                    })
                    .collect();
                let mean = completions.iter().map(|c| c.reward).sum::<f64>() / completions.len().max(1) as f64;
                let completions =
                    completions.into_iter().map(|c| Completion { advantage: c.reward - mean, ..c }).collect();
                RolloutGroup { step, prompt: format!("prompt {g}: what is {g} + {step}?"), completions }
            })
            .collect();
        written += groups.iter().map(|g| g.completions.len()).sum::<usize>();
        store.write_step(step, &groups)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let prefs: Vec<Preference> = (0..100)
        .map(|i| Preference {
            prompt: format!("question {i}"),
            chosen: format!("a careful answer {i}"),
            rejected: format!("a sloppy answer {i}"),
        })
        .collect();
    let (train, test) = prefs.split_at(80);
    write_hf_dataset(
        out.join("prefs"),
        "rlox-demo-preferences",
        preference_schema(),
        &[("train", vec![preferences_to_batch(train)?]), ("test", vec![preferences_to_batch(test)?])],
        &WriteOptions::default(),
    )?;
    let episodes: Vec<Episode> = (0..5)
        .map(|e| Episode {
            episode: e,
            transitions: (0..3 + e as usize)
                .map(|t| Transition { obs: vec![t as f64, 0.5], action: vec![(t % 2) as f64], reward: 1.0 })
                .collect(),
            terminated: e % 2 == 0,
            truncated: e % 2 == 1,
        })
        .collect();
    let b = episodes_to_batch("demo", &episodes)?;
    write_parquet(out.join("episodes.parquet"), b.schema(), &[b], &WriteOptions::default())?;
    println!("{{\"completions\": {written}, \"write_seconds\": {secs:.3}}}");
    Ok(())
}
