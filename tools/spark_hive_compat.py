#!/usr/bin/env python3
"""Do Spark, Hive's ParquetHiveSerDe and Hugging Face `datasets` read what rlox writes, and does
`rlox sql` give the same rows as Spark for the same LATERAL VIEW explode query?

    cargo build --release -p rlox-data --example write_demo
    cargo build --release -p rlox-cli
    pip install pyspark datasets        # Java 17 for Spark
    python3 tools/spark_hive_compat.py [--target-dir target]

Steps:
1. write_demo writes a small rollout store (Hive partitions run=/step=), an HF dataset dir, episodes;
2. the same Hive query runs in `rlox sql` (CSV out) and in Spark local mode (native LATERAL VIEW);
   the sorted rows must be equal (floats compared to 1e-9);
3. a Hive external table over the store, read through Hive's ParquetHiveSerDe (Spark's embedded
   Hive, spark.sql.hive.convertMetastoreParquet=false), selects nested struct fields;
4. datasets.load_dataset(<dir>) reads the HF layout with the declared features.
Prints one JSON object with the outcome of each check; exits non-zero if one fails.
"""
import argparse, csv, io, json, os, shutil, subprocess, sys, tempfile

QUERIES = {
    "lateral_view": """SELECT step, prompt, c.text AS text, c.num_tokens AS num_tokens, c.rewards.accuracy AS acc, c.reward AS reward
FROM rollouts LATERAL VIEW explode(completions) v AS c""",
    "lateral_view_outer_group_by": """SELECT step, prompt, count(c.text) AS n, sum(c.reward) AS total
FROM rollouts LATERAL VIEW OUTER explode(completions) v AS c GROUP BY step, prompt""",
    "posexplode_window": """SELECT step, prompt, pos, c.reward - avg(c.reward) OVER (PARTITION BY step, prompt) AS adv
FROM rollouts LATERAL VIEW posexplode(completions) v AS pos, c""",
}


def norm(rows):
    out = []
    for r in rows:
        t = []
        for x in r:
            if x is None or x == "":
                t.append(None)
                continue
            try:
                f = float(x)
                t.append(round(f, 9))
            except (TypeError, ValueError):
                t.append(str(x))
        out.append(tuple(t))
    return sorted(out, key=lambda t: tuple((v is None, str(type(v)), v if v is not None else 0) for v in t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--completions", type=int, default=2000)
    a = ap.parse_args()
    rel = os.path.join(a.target_dir, "release")
    # `rlox sql` when the CLI was built with `--features sql`, else the rlox-sql example (same arguments).
    rlox_sql = [os.path.join(rel, "rlox"), "sql"]
    if not os.path.exists(rlox_sql[0]) or subprocess.run(rlox_sql + ["--help"], capture_output=True).returncode != 0:
        rlox_sql = [os.path.join(rel, "examples", "sql")]
    work = tempfile.mkdtemp(prefix="rlox-spark-")
    result = {"work_dir": work}
    subprocess.run([os.path.join(rel, "examples", "write_demo"), work, str(a.completions), "8", "4"], check=True,
                   stdout=subprocess.DEVNULL)
    store = os.path.join(work, "rollouts")

    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").appName("rlox-compat")
             .config("spark.sql.shuffle.partitions", "1")
             .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
             .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work}")
             .config("spark.sql.hive.convertMetastoreParquet", "false")
             .enableHiveSupport().getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    result["spark_version"] = spark.version
    spark.read.parquet(store).createOrReplaceTempView("rollouts")

    ok = True
    for name, q in QUERIES.items():
        rl = subprocess.run(rlox_sql + [q, "--table", f"rollouts={store}", "--output", "csv"],
                            check=True, capture_output=True, text=True).stdout
        rl_rows = list(csv.reader(io.StringIO(rl)))[1:]
        sp_rows = [tuple(r) for r in spark.sql(q).collect()]
        same = norm(rl_rows) == norm(sp_rows)
        ok &= same
        result[name] = {"rows_rlox": len(rl_rows), "rows_spark": len(sp_rows), "same_rows": same}

    # Hive's ParquetHiveSerDe over the same files (not Spark's native reader).
    spark.sql("DROP TABLE IF EXISTS rollouts_hive")
    spark.sql(f"""CREATE EXTERNAL TABLE rollouts_hive (
        prompt STRING,
        completions ARRAY<STRUCT<text: STRING, num_tokens: BIGINT, rewards: STRUCT<accuracy: DOUBLE, format: DOUBLE>,
                                 reward: DOUBLE, advantage: DOUBLE>>)
        PARTITIONED BY (run STRING, step BIGINT)
        ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'
        STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat'
        OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat'
        LOCATION '{store}'""")
    spark.sql("MSCK REPAIR TABLE rollouts_hive")
    serde = [r for r in spark.sql("DESCRIBE FORMATTED rollouts_hive").collect() if r[0].strip() == "Serde Library"]
    hive_q = """SELECT step, count(*) AS n, sum(c.rewards.accuracy) AS acc, sum(c.num_tokens) AS toks
                FROM rollouts_hive LATERAL VIEW explode(completions) v AS c GROUP BY step"""
    hive_rows = sorted(tuple(r) for r in spark.sql(hive_q).collect())
    native_rows = sorted(tuple(r) for r in spark.sql(hive_q.replace("rollouts_hive", "rollouts")).collect())
    scan = spark.sql("SELECT * FROM rollouts_hive")._jdf.queryExecution().executedPlan().toString()
    hive_scan = "HiveTableScan" in scan or "Scan hive" in scan
    hive_ok = hive_rows == native_rows and len(hive_rows) > 0 and hive_scan
    ok &= hive_ok
    result["hive_serde"] = {"serde": serde[0][1].strip() if serde else None, "hive_table_scan": hive_scan, "plan": scan.splitlines()[0][:120],
                            "rows": len(hive_rows), "same_as_native": hive_rows == native_rows}

    # Episodes (list of structs holding lists) through Spark.
    ep = spark.read.parquet(os.path.join(work, "episodes.parquet"))
    n_tr = ep.selectExpr("explode(transitions) AS t").selectExpr("sum(size(t.obs))").collect()[0][0]
    result["episodes_obs_values"] = n_tr
    spark.stop()

    try:
        import datasets
        ds = datasets.load_dataset(os.path.join(work, "prefs"))
        hf_ok = ds["train"].num_rows == 80 and ds["test"].num_rows == 20 and ds["train"][0]["chosen"].startswith("a careful")
        result["datasets"] = {"version": datasets.__version__, "splits": {k: v.num_rows for k, v in ds.items()},
                              "features": str(ds["train"].features), "ok": hf_ok}
        ok &= hf_ok
    except ImportError:
        result["datasets"] = "not installed"
    result["ok"] = ok
    print(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
