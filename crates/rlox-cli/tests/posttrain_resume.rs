//! `rlox sft|rm|dpo|grpo --resume RUN_DIR`: the real binary killed with SIGKILL (inside a checkpoint
//! write, then at seeded random moments after its checkpoints) and resumed each time ends exactly where
//! an uninterrupted run of the same seed ends: the same metric records, the same sample files, and
//! byte-identical final checkpoint files (weights, optimizer state, trainer state). Damaged checkpoints
//! are errors that name the file, never a panic and never a silent fresh start.

use rlox_core::seeding::derive_seed;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlox"));
    // One thread: the numbers compared bit for bit must not depend on a thread count.
    c.args(args).current_dir(repo()).env("RAYON_NUM_THREADS", "1");
    c
}

fn run_ok(args: &[&str]) -> Value {
    let out = command(args).output().expect("the rlox binary runs");
    assert!(out.status.success(), "rlox {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
}

fn spawn(args: &[&str], env: &[(&str, String)]) -> Child {
    let mut c = command(args);
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).stdout(Stdio::null()).stderr(Stdio::null());
    c.spawn().expect("the rlox binary starts")
}

fn fails(args: &[&str]) -> String {
    let out: Output = command(args).output().expect("the rlox binary runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "rlox {args:?} should fail");
    assert!(!err.contains("panicked"), "rlox {args:?} panicked: {err}");
    err
}

/// The one run directory under `root` (once it exists).
fn run_dir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root).ok()?.flatten().map(|e| e.path()).find(|p| p.is_dir())
}

/// The step of the run's newest complete checkpoint.
fn latest_step(run: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).ok()?;
    name.trim().strip_prefix("step-")?.parse().ok()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `metrics.jsonl` without the wall-clock times.
fn records(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_time");
            v
        })
        .collect()
}

/// Every file under `dir` (relative path -> bytes).
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// A uniform number in [0, 1) from the test's seed.
fn uniform(seed: u64, k: u64) -> f64 {
    (derive_seed(seed, k) >> 11) as f64 / (1u64 << 53) as f64
}

/// One method's case: its shipped tiny config with `extra` settings, `steps` steps, checkpoints every
/// `every` steps; `pause_at` is the step of a checkpoint that is not the first.
struct Case {
    method: &'static str,
    extra: &'static str,
    steps: u64,
    pause_at: u64,
}

impl Case {
    fn config(&self, dir: &Path, runs: &Path) -> PathBuf {
        let text = std::fs::read_to_string(repo().join(format!("configs/{}_tiny.toml", self.method))).unwrap();
        let kept: Vec<&str> =
            text.lines().filter(|l| !l.starts_with("runs_dir") && !l.starts_with("checkpoint_every")).collect();
        let path = dir.join(format!("{}.toml", self.method));
        let head = format!("runs_dir = \"{}\"\n{}\n", runs.display(), self.extra);
        std::fs::write(&path, head + &kept.join("\n")).unwrap();
        path
    }

    fn check(&self) {
        let dir = tempfile::tempdir().unwrap();
        let steps = self.steps.to_string();
        let m = self.method;
        // The uninterrupted run, timed.
        let full_root = dir.path().join("full");
        let config = self.config(dir.path(), &full_root);
        let t = Instant::now();
        let full = run_ok(&[m, "--config", config.to_str().unwrap(), "--max-steps", &steps, "--format", "json"]);
        let full_seconds = t.elapsed().as_secs_f64();
        let full_run = PathBuf::from(full["run_dir"].as_str().unwrap());

        // 1. Killed inside the write of checkpoint `pause_at`: the previous one stays `latest` and loads.
        let root = dir.path().join("killed");
        let config = self.config(dir.path(), &root);
        let args = [m, "--config", config.to_str().unwrap(), "--max-steps", &steps, "--format", "json"];
        let mut child = spawn(&args, &[("RLOX_TEST_PAUSE_IN_CHECKPOINT", self.pause_at.to_string())]);
        let paused = || {
            let run = run_dir(&root)?;
            let tmp = run.join(format!("checkpoints/.step-{:012}.tmp", self.pause_at));
            tmp.join("paused").exists().then_some(run)
        };
        wait_until("the paused checkpoint write", Duration::from_secs(120), || paused().is_some());
        let run = paused().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let previous = latest_step(&run).expect("a complete earlier checkpoint");
        assert!(previous < self.pause_at, "{m}: latest is {previous}");
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(run.join(format!("checkpoints/step-{previous:012}/trainer_state.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!((state["method"].as_str(), state["step"].as_u64()), (Some(m), Some(previous)));

        // 2. Resumed and killed again at seeded random moments after checkpoints, three times.
        let run_str = run.to_str().unwrap().to_string();
        let resume = [m, "--resume", run_str.as_str(), "--format", "json"];
        let mut interrupted = 0;
        for k in 0..3 {
            let before = latest_step(&run);
            let mut child = spawn(&resume, &[]);
            let t = Instant::now();
            // After this process's first checkpoint (or its end, if it has none left to write).
            wait_until("a checkpoint of the resumed run", Duration::from_secs(120), || {
                latest_step(&run) != before || child.try_wait().unwrap().is_some()
            });
            let left = self.steps.saturating_sub(latest_step(&run).unwrap_or(0)) as f64 / self.steps as f64;
            let delay = uniform(0xFA17 + self.steps, k) * 0.6 * left * full_seconds;
            std::thread::sleep(Duration::from_secs_f64(delay));
            let running = child.try_wait().unwrap().is_none();
            if running {
                child.kill().unwrap();
                interrupted += 1;
            }
            let status = child.wait().unwrap();
            assert!(status.success() || status.code().is_none(), "{m}: the resumed run failed ({status})");
            let at = t.elapsed().as_secs_f64();
            eprintln!(
                "{m}: resume {k}: {} {at:.3} s after its start, latest checkpoint {:?}",
                if running { "killed" } else { "finished" },
                latest_step(&run)
            );
        }
        assert!(interrupted >= 1, "{m}: no kill landed inside a run; the runs are too short for this machine");

        // 3. The last resume runs to the end: everything equals the uninterrupted run.
        let last = run_ok(&resume);
        assert_eq!(last["steps"], full["steps"], "{m}");
        assert_eq!(last["final_loss"], full["final_loss"], "{m}");
        assert_eq!(records(&run), records(&full_run), "{m}: metrics.jsonl differs");
        for f in ["samples.jsonl", "eval_samples.jsonl"] {
            assert_eq!(std::fs::read(run.join(f)).unwrap(), std::fs::read(full_run.join(f)).unwrap(), "{m}: {f}");
        }
        let (a, b) = (
            files(Path::new(last["checkpoint"].as_str().unwrap())),
            files(Path::new(full["checkpoint"].as_str().unwrap())),
        );
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{m}");
        for (name, bytes) in &a {
            assert!(bytes == &b[name], "{m}: {name} of the final checkpoint differs");
        }
        assert!(a.contains_key("model.safetensors") && a.contains_key("optimizer.safetensors"), "{m}: {a:?}");
        let rollouts = |r: &Path| files(&r.join("rollouts")).into_keys().collect::<Vec<_>>();
        assert_eq!(rollouts(&run), rollouts(&full_run), "{m}: rollout partitions");
    }
}

#[test]
fn sft_resumes_exactly_after_kills() {
    Case { method: "sft", extra: "checkpoint_every = 2", steps: 40, pause_at: 4 }.check();
}

#[test]
fn reward_model_resumes_exactly_after_kills() {
    Case { method: "rm", extra: "checkpoint_every = 2", steps: 30, pause_at: 4 }.check();
}

/// With held-out pairs, so that evaluations resume too.
#[test]
fn dpo_resumes_exactly_after_kills() {
    let extra = "checkpoint_every = 2\neval_every = 5\neval_file = \"configs/data/prefs_tiny.jsonl\"";
    Case { method: "dpo", extra, steps: 30, pause_at: 4 }.check();
}

/// Two optimizer steps per generation round: a checkpoint due at step 3 is taken at the round's end (4).
/// With held-out prompts, so that evaluations (and `eval_samples.jsonl`) resume too.
#[test]
fn grpo_resumes_exactly_after_kills() {
    let extra =
        "checkpoint_every = 3\neval_every = 4\neval_file = \"configs/data/prompts_tiny.jsonl\"\neval_num_samples = 2";
    Case { method: "grpo", extra, steps: 24, pause_at: 6 }.check();
}

/// A finished DPO run and a reward-model run with damaged checkpoint files: each resume is an error
/// naming the file, and leaves the run's files as they were.
#[test]
fn damaged_checkpoints_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for m in ["dpo", "rm"] {
        let root = dir.path().join(m);
        let config = Case { method: m, extra: "", steps: 0, pause_at: 0 }.config(dir.path(), &root);
        let s = run_ok(&[m, "--config", config.to_str().unwrap(), "--max-steps", "2", "--format", "json"]);
        runs.push((m, PathBuf::from(s["run_dir"].as_str().unwrap()), PathBuf::from(s["checkpoint"].as_str().unwrap())));
    }
    let (_, dpo, dpo_ckpt) = runs[0].clone();
    let (_, rm, rm_ckpt) = runs[1].clone();
    let metrics = std::fs::read(dpo.join("metrics.jsonl")).unwrap();
    let resume = |m: &str, run: &Path| fails(&[m, "--resume", run.to_str().unwrap()]);
    // Resuming with another method's command names the method.
    let e = resume("sft", &dpo);
    assert!(e.contains("a dpo run") && e.contains("rlox dpo --resume"), "{e}");
    // Truncated, corrupted or missing files.
    let damage = |ckpt: &Path, file: &str, how: &dyn Fn(&[u8]) -> Vec<u8>| {
        let p = ckpt.join(file);
        let good = std::fs::read(&p).unwrap();
        std::fs::write(&p, how(&good)).unwrap();
        good
    };
    let half = |b: &[u8]| b[..b.len() / 2].to_vec();
    let garbage = |b: &[u8]| {
        let mut b = b.to_vec();
        b[..8].copy_from_slice(b"\xff\xff\xff\xff\xff\xff\xff\x7f");
        b
    };
    for (m, run, ckpt, file, how) in [
        ("dpo", &dpo, &dpo_ckpt, "model.safetensors", &half as &dyn Fn(&[u8]) -> Vec<u8>),
        ("dpo", &dpo, &dpo_ckpt, "optimizer.safetensors", &garbage),
        ("dpo", &dpo, &dpo_ckpt, "trainer_state.json", &half),
        ("dpo", &dpo, &dpo_ckpt, "config.json", &half),
        ("rm", &rm, &rm_ckpt, "score.safetensors", &half),
    ] {
        let good = damage(ckpt, file, how);
        let e = resume(m, run);
        assert!(e.contains(&ckpt.join(file).display().to_string()), "{file}: {e}");
        std::fs::write(ckpt.join(file), good).unwrap();
    }
    std::fs::remove_file(dpo_ckpt.join("model.safetensors")).unwrap();
    let e = resume("dpo", &dpo);
    assert!(e.contains("model.safetensors") && e.contains("missing"), "{e}");
    // No checkpoint at all: an error, not a fresh start.
    std::fs::remove_dir_all(dpo.join("checkpoints")).unwrap();
    let e = resume("dpo", &dpo);
    assert!(e.contains("no checkpoint"), "{e}");
    assert_eq!(std::fs::read(dpo.join("metrics.jsonl")).unwrap(), metrics, "a failed resume changed the metrics");
    // --resume takes no config, and r1-zero does not resume.
    let e = fails(&["dpo", "--resume", dpo.to_str().unwrap(), "--config", "configs/dpo_tiny.toml"]);
    assert!(e.contains("--config") && e.contains("--resume"), "{e}");
    assert!(fails(&["r1-zero", "--resume", dpo.to_str().unwrap()]).contains("does not resume"));
}
