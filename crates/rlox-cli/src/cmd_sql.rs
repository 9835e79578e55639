//! `rlox sql "QUERY" [--table [NAME=]PATH ...] [--output table|csv|json|parquet [FILE]]`: SQL over run
//! directories, rollout stores and datasets (Apache DataFusion, with Hive's `LATERAL VIEW explode`).
//! Built only with the `sql` cargo feature.

use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `rlox sql`.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The query. Hive's `LATERAL VIEW [OUTER] explode(xs) v AS x`, `explode`, `explode_outer` and
    /// `posexplode` are accepted.
    query: String,
    /// A table: `NAME=PATH` (a Parquet file or directory, Hive partitions `k=v/` become columns), or a
    /// bare `PATH` registered under automatic names: a run directory gives `metrics`, `rollouts`,
    /// `episodes`; a Hugging Face dataset directory gives one table per split; a Parquet path its stem.
    #[arg(long = "table", value_name = "[NAME=]PATH")]
    tables: Vec<String>,
    /// Output: `table` (default), `csv`, `json` (one JSON object), or `parquet FILE`; a FILE after
    /// table/csv/json writes there instead of stdout.
    #[arg(long, num_args = 1..=2, value_names = ["FORMAT", "FILE"])]
    output: Vec<String>,
    /// Print the query after the Hive rewrite instead of running it.
    #[arg(long)]
    explain_rewrite: bool,
}

/// Run `rlox sql`.
pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    if args.explain_rewrite {
        println!("{}", rlox_sql::rewrite_to_string(&args.query)?);
        return Ok(());
    }
    let format = args.output.first().map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| "table".into());
    let file = args.output.get(1).map(PathBuf::from);
    if !["table", "csv", "json", "parquet"].contains(&format.as_str()) {
        bail!("--output {format}: use table, csv, json or parquet");
    }
    if format == "parquet" && file.is_none() {
        bail!("--output parquet needs a file: --output parquet out.parquet");
    }
    let mut session = rlox_sql::Session::new(1)?;
    for t in &args.tables {
        match t.split_once('=') {
            Some((name, path)) if !name.contains('/') && !name.is_empty() => {
                session.register(name, path).with_context(|| format!("--table {t}"))?;
            }
            _ => {
                let names = session.register_auto(t).with_context(|| format!("--table {t}"))?;
                tracing::info!("{t}: tables {}", names.join(", "));
            }
        }
    }
    let out = session.query(&args.query)?;
    let text = match format.as_str() {
        "table" => out.to_table()? + "\n",
        "csv" => out.to_csv()?,
        "json" => {
            // Written by hand so that each row's keys keep the SELECT's column order (serde_json's maps sort).
            let columns: Vec<&String> = out.schema.fields().iter().map(|f| f.name()).collect();
            format!(
                "{{\"columns\":{},\"num_rows\":{},\"rows\":{}}}\n",
                serde_json::to_string(&columns)?,
                out.num_rows(),
                out.to_json()?
            )
        }
        _ => {
            let path = out.write_parquet(file.as_ref().expect("checked"))?;
            eprintln!("wrote {} rows to {}", out.num_rows(), path.display());
            return Ok(());
        }
    };
    match file {
        Some(f) => rlox_core::checkpoint::atomic_write(&f, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}
