#!/usr/bin/env python3
"""Write 1M GRPO rollout completions with rlox-data, then run one explode + group-by query with
`rlox sql`, DuckDB and Spark (local[1]) on the same files. Single-threaded, one run each.

    cargo build --release -p rlox-data --example write_demo
    cargo build --release -p rlox-cli
    pip install duckdb pyspark
    RAYON_NUM_THREADS=1 python3 bench/sql_explode.py [--completions 1000000] [--target-dir target]

Timings are wall-clock seconds of the query alone where the engine allows it (DuckDB, Spark: the
session is started and the table registered before the clock starts); `rlox sql` is timed as a whole
process (start, registration, query, CSV out), which favours the others. Results are compared.
"""
import argparse, csv, io, json, os, shutil, subprocess, tempfile, time

HIVE_Q = """SELECT step, count(*) AS n, round(avg(c.reward), 9) AS mean_reward, sum(c.num_tokens) AS tokens,
       round(avg(c.rewards.accuracy), 9) AS acc
FROM rollouts LATERAL VIEW explode(completions) v AS c
GROUP BY step ORDER BY step"""

DUCK_Q = """SELECT step, count(*) AS n, round(avg(c.reward), 9) AS mean_reward, sum(c.num_tokens) AS tokens,
       round(avg(c.rewards.accuracy), 9) AS acc
FROM (SELECT step, unnest(completions) AS c FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true))
GROUP BY step ORDER BY step"""


def rows_of(rows):
    return [tuple(round(float(x), 6) for x in r) for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--completions", type=int, default=1_000_000)
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--skip-spark", action="store_true")
    a = ap.parse_args()
    rel = os.path.join(a.target_dir, "release")
    # `rlox sql` when the CLI was built with `--features sql`, else the rlox-sql example (same arguments).
    rlox_sql = [os.path.join(rel, "rlox"), "sql"]
    if not os.path.exists(rlox_sql[0]) or subprocess.run(rlox_sql + ["--help"], capture_output=True).returncode != 0:
        rlox_sql = [os.path.join(rel, "examples", "sql")]
    work = tempfile.mkdtemp(prefix="rlox-bench-")
    res = {"completions": a.completions}
    t = time.perf_counter()
    out = subprocess.run([os.path.join(rel, "examples", "write_demo"), work, str(a.completions), "16", "10"],
                         check=True, capture_output=True, text=True).stdout
    res["rlox_write"] = {"process_s": round(time.perf_counter() - t, 3), **json.loads(out)}
    root = os.path.join(work, "rollouts")
    res["store_mb"] = round(sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs) / 1e6, 1)

    t = time.perf_counter()
    rl = subprocess.run(rlox_sql + [HIVE_Q, "--table", f"rollouts={root}", "--output", "csv"], check=True, capture_output=True, text=True).stdout
    res["rlox_sql_s"] = round(time.perf_counter() - t, 3)
    rl_rows = rows_of(list(csv.reader(io.StringIO(rl)))[1:])

    import duckdb
    con = duckdb.connect()
    con.execute("SET threads = 1")
    t = time.perf_counter()
    dk_rows = rows_of(con.execute(DUCK_Q.format(root=root)).fetchall())
    res["duckdb_s"] = round(time.perf_counter() - t, 3)
    res["duckdb_version"] = duckdb.__version__
    res["same_rows_duckdb"] = dk_rows == rl_rows

    if not a.skip_spark:
        from pyspark.sql import SparkSession
        spark = (SparkSession.builder.master("local[1]").config("spark.sql.shuffle.partitions", "1")
                 .config("spark.driver.memory", "4g").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        spark.read.parquet(root).createOrReplaceTempView("rollouts")
        t = time.perf_counter()
        sp_rows = rows_of(spark.sql(HIVE_Q).collect())
        res["spark_s"] = round(time.perf_counter() - t, 3)
        res["spark_version"] = spark.version
        res["same_rows_spark"] = sp_rows == rl_rows
        spark.stop()
        res["ratio_spark_over_rlox"] = round(res["spark_s"] / res["rlox_sql_s"], 2)
    res["ratio_duckdb_over_rlox"] = round(res["duckdb_s"] / res["rlox_sql_s"], 2)
    print(json.dumps(res, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
