//! `rlox sql` without the rest of the CLI (same arguments, same output), for the comparison scripts on
//! machines that built only the data crates:
//!
//! ```text
//! cargo run --release -p rlox-sql --example sql -- "QUERY" [--table [NAME=]PATH ...] [--output table|csv|json]
//! ```

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let mut query = None;
    let mut tables = Vec::new();
    let mut output = "table".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--table" => tables.push(it.next().ok_or("--table needs a value")?.clone()),
            "--output" => output = it.next().ok_or("--output needs a value")?.clone(),
            q => query = Some(q.to_string()),
        }
    }
    let query = query.ok_or("usage: sql QUERY [--table [NAME=]PATH] [--output table|csv|json]")?;
    let mut s = rlox_sql::Session::new(1)?;
    for t in &tables {
        match t.split_once('=') {
            Some((name, path)) if !name.contains('/') => s.register(name, path)?,
            _ => {
                s.register_auto(t)?;
            }
        }
    }
    let out = s.query(&query)?;
    match output.as_str() {
        "csv" => print!("{}", out.to_csv()?),
        "json" => println!("{}", out.to_json()?),
        _ => println!("{}", out.to_table()?),
    }
    Ok(())
}
