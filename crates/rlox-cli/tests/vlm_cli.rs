//! `rlox vlm generate | score` end to end on the tiny Kimi-VL fixture: one JSON object, the image's grid
//! and token count, and clear errors (a corrupt image, a prompt without the image's placeholder).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn rlox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlox")).args(args).output().expect("the rlox binary runs")
}

fn json_ok(args: &[&str]) -> Value {
    let out = rlox(args);
    assert!(out.status.success(), "rlox {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object on stdout: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let out = rlox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rlox {args:?} should fail");
    assert!(!stderr.contains("panicked"), "rlox {args:?} panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "rlox {args:?}: '{n}' not in: {stderr}");
    }
}

#[test]
fn vlm_generate_and_score_on_the_tiny_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rlox-vlm/tests/fixtures/kimi_vl_tiny");
    let m = dir.to_str().unwrap();
    let img = dir.join("a.png");
    let img = img.to_str().unwrap();
    let v = json_ok(&[
        "vlm",
        "generate",
        "--model",
        m,
        "--image",
        img,
        "--prompt",
        "What colour is this image?",
        "--max-new-tokens",
        "6",
        "--format",
        "json",
    ]);
    assert_eq!(v["images"][0]["grid"], serde_json::json!([4, 6]));
    assert_eq!(v["images"][0]["tokens"], 6);
    let n = v["token_ids"].as_array().unwrap().len();
    assert!((1..=6).contains(&n) && v["logprobs"].as_array().unwrap().len() == n);
    let s = json_ok(&[
        "vlm",
        "score",
        "--model",
        m,
        "--image",
        img,
        "--prompt",
        "What colour?",
        "--completion",
        "red",
        "--format",
        "json",
    ]);
    assert!(s["total_logprob"].as_f64().unwrap() < 0.0);
    let corrupt = dir.join("corrupt.png");
    fails_with(
        &["vlm", "generate", "--model", m, "--image", corrupt.to_str().unwrap(), "--prompt", "x"],
        &["corrupt.png", "cannot decode"],
    );
    fails_with(
        &["vlm", "generate", "--model", m, "--image", img, "--prompt", "no placeholder", "--raw"],
        &["placeholder"],
    );
}
