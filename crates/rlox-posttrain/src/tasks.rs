//! Task generators for reasoning-style RL: countdown and arithmetic problems, solvable by
//! construction, each with a worked solution in R1's format for an SFT warm-up.
//!
//! * Countdown: `n` numbers are drawn, combined in a random order by a random chain of `+ - *` (and `/`
//!   only when it divides exactly) keeping every intermediate value a positive integer; the final value is
//!   the target. The row holds `prompt`, `numbers`, `target` and `solution` (`<think>` the steps
//!   `</think><answer>` the expression `</answer>`).
//! * Arithmetic: `a op b` (or `a op b op c`) with small operands, evaluated with the usual precedence;
//!   the row holds `prompt`, `answer` and `solution`. The worked steps are either the results
//!   (`direct`: `<think>3+4=7</think>`) or, for two-operand `+`/`-` problems, a count (`counting`:
//!   `<think>3+4: 1:4 2:5 3:6 4:7</think>`, one step of size one per unit of the second operand,
//!   numbered). Why counting: a model trained from scratch on a few direct examples can only memorise
//!   them, while every counting step is the same two successor facts, which carry over to problems
//!   it has not seen; that gives GRPO a procedure to make reliable instead of a table to guess.
//!
//! Rows are JSON objects, the same as a dataset row read from JSON Lines ([`crate::datasets::Row`]),
//! and the `prompt`/`completion` pair (`completion` = `solution`) makes them SFT rows too.

use crate::datasets::Row;
use crate::rewards::{countdown_score, eval_expression, Rational};
use rand::Rng;
use rlox_core::seeding::rng_from_seed;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Countdown: reach a target with given numbers.
    Countdown,
    /// Evaluate a small arithmetic expression.
    Arithmetic,
}

/// Generator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// The task.
    pub kind: TaskKind,
    /// Numbers per countdown problem (operands per arithmetic problem: 2 or 3).
    pub num_operands: usize,
    /// Operands are drawn from `1..=max_operand`.
    pub max_operand: i64,
    /// Arithmetic only: the operands after the first are drawn from `1..=max_later_operand` instead
    /// (`None`: `max_operand`). A small second operand with a large first one (`47+3`) keeps a counting
    /// solution short while the problem space grows with `max_operand`.
    pub max_later_operand: Option<i64>,
    /// Countdown targets at most this (problems above are redrawn).
    pub max_target: i64,
    /// Operators to use, from `+ - * /`.
    pub operators: String,
    /// How arithmetic solutions show their work (see the module docs).
    pub steps: StepStyle,
}

/// How an arithmetic worked solution shows its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStyle {
    /// Each operation with its result: `3+4=7`.
    #[default]
    Direct,
    /// Two-operand `+`/`-`: count from the first operand in numbered unit steps (`3+4: 1:4 2:5 3:6 4:7`);
    /// other problems fall back to `direct`.
    Counting,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            kind: TaskKind::Countdown,
            num_operands: 3,
            max_operand: 9,
            max_later_operand: None,
            max_target: 100,
            operators: "+-*".into(),
            steps: StepStyle::Direct,
        }
    }
}

fn apply(a: i64, op: char, b: i64) -> Option<i64> {
    match op {
        '+' => a.checked_add(b),
        '-' => a.checked_sub(b),
        '*' => a.checked_mul(b),
        '/' => (b != 0 && a % b == 0).then(|| a / b),
        _ => None,
    }
}

/// One countdown problem.
pub fn countdown_task<R: Rng>(rng: &mut R, cfg: &TaskConfig) -> Row {
    let ops: Vec<char> = cfg.operators.chars().filter(|c| "+-*/".contains(*c)).collect();
    let ops = if ops.is_empty() { vec!['+'] } else { ops };
    loop {
        let numbers: Vec<i64> = (0..cfg.num_operands.max(2)).map(|_| rng.random_range(1..=cfg.max_operand)).collect();
        // Combine left to right in a random order: ((x0 op x1) op x2) ...
        let mut order: Vec<usize> = (0..numbers.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut value = numbers[order[0]];
        let mut expr = value.to_string();
        let mut steps = Vec::new();
        let mut ok = true;
        for &k in &order[1..] {
            let op = ops[rng.random_range(0..ops.len())];
            let x = numbers[k];
            match apply(value, op, x) {
                Some(v) if v > 0 => {
                    steps.push(format!("{value}{op}{x}={v}"));
                    let needs_paren = matches!(op, '*' | '/') && expr.contains(['+', '-']);
                    expr = if needs_paren { format!("({expr}){op}{x}") } else { format!("{expr}{op}{x}") };
                    value = v;
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok || value > cfg.max_target {
            continue;
        }
        let nums: Vec<i128> = numbers.iter().map(|&n| n as i128).collect();
        debug_assert_eq!(countdown_score(&expr, &nums, Rational::int(value as i128)), 1.0);
        let list = numbers.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
        let solution = format!("<think>{}</think><answer>{expr}</answer>", steps.join(", "));
        return json!({
            "prompt": format!("Use {list} to make {value}."),
            "numbers": numbers,
            "target": value,
            "solution": solution.clone(),
            "completion": solution,
        })
        .as_object()
        .cloned()
        .expect("object");
    }
}

/// One arithmetic problem.
pub fn arithmetic_task<R: Rng>(rng: &mut R, cfg: &TaskConfig) -> Row {
    let ops: Vec<char> = cfg.operators.chars().filter(|c| "+-*".contains(*c)).collect();
    let ops = if ops.is_empty() { vec!['+'] } else { ops };
    let n = cfg.num_operands.clamp(2, 3);
    let later = cfg.max_later_operand.unwrap_or(cfg.max_operand).max(1);
    let xs: Vec<i64> = (0..n).map(|i| rng.random_range(1..=if i == 0 { cfg.max_operand } else { later })).collect();
    let os: Vec<char> = (0..n - 1).map(|_| ops[rng.random_range(0..ops.len())]).collect();
    let mut expr = xs[0].to_string();
    for (o, x) in os.iter().zip(&xs[1..]) {
        expr.push(*o);
        expr.push_str(&x.to_string());
    }
    let value = eval_expression(&expr).expect("generated expressions parse").value;
    // Worked steps: multiplications first, then left to right.
    let mut vals = xs.clone();
    let mut opv = os.clone();
    let mut steps = Vec::new();
    while let Some(i) = opv.iter().position(|&o| o == '*') {
        let v = vals[i] * vals[i + 1];
        steps.push(format!("{}*{}={v}", vals[i], vals[i + 1]));
        vals.splice(i..=i + 1, [v]);
        opv.remove(i);
    }
    while !opv.is_empty() {
        let v = apply(vals[0], opv[0], vals[1]).expect("small numbers");
        steps.push(format!("{}{}{}={v}", vals[0], opv[0], vals[1]));
        vals.splice(0..=1, [v]);
        opv.remove(0);
    }
    if cfg.steps == StepStyle::Counting && xs.len() == 2 && matches!(os[0], '+' | '-') {
        let dir = if os[0] == '+' { 1 } else { -1 };
        let counted: Vec<String> = (1..=xs[1]).map(|k| format!("{k}:{}", xs[0] + dir * k)).collect();
        steps = vec![format!("{expr}: {}", counted.join(" "))];
    }
    let answer = value.num.to_string();
    let solution = format!("<think>{}</think><answer>{answer}</answer>", steps.join(", "));
    json!({
        "prompt": format!("Compute {expr}."),
        "answer": answer,
        "solution": solution.clone(),
        "completion": solution,
    })
    .as_object()
    .cloned()
    .expect("object")
}

/// The same problem with a format-only solution: `<think>` restates the problem (the expression, or the
/// numbers and the target) and `</think><answer>` gives the answer with no worked steps. An SFT set that
/// mixes these with worked solutions teaches the format and leaves it to RL to find that working the
/// problem out pays (see [`crate::r1_zero`]).
pub fn format_only(row: &Row) -> Row {
    let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let restated = match row.get("numbers").and_then(Value::as_array) {
        Some(ns) => {
            let list: Vec<String> = ns.iter().map(Value::to_string).collect();
            format!("{} to {}", list.join(" "), row.get("target").map(Value::to_string).unwrap_or_default())
        }
        None => text("prompt").trim_start_matches("Compute ").trim_end_matches('.').to_string(),
    };
    let solution = text("solution");
    let answer = crate::rewards::extract_answer(&solution).unwrap_or_default();
    let mut out = row.clone();
    out.insert("completion".into(), format!("<think>{restated}</think><answer>{answer}</answer>").into());
    out
}

/// `n` problems from `seed`.
pub fn generate_tasks(cfg: &TaskConfig, n: usize, seed: u64) -> Vec<Row> {
    let mut rng = rng_from_seed(seed);
    (0..n)
        .map(|_| match cfg.kind {
            TaskKind::Countdown => countdown_task(&mut rng, cfg),
            TaskKind::Arithmetic => arithmetic_task(&mut rng, cfg),
        })
        .collect()
}

/// Rows as JSON Lines text.
pub fn to_jsonl(rows: &[Row]) -> String {
    rows.iter().map(|r| Value::Object(r.clone()).to_string() + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewards::{is_r1_format, ArithmeticReward, CountdownReward, FormatReward, RewardFn};

    #[test]
    fn generated_problems_are_solved_by_their_solutions() {
        for kind in [TaskKind::Countdown, TaskKind::Arithmetic] {
            for ops in ["+-*", "+-*/", "+"] {
                let cfg = TaskConfig { kind, operators: ops.into(), num_operands: 3, ..Default::default() };
                let rows = generate_tasks(&cfg, 200, 7);
                for r in &rows {
                    let sol = r["solution"].as_str().unwrap();
                    assert!(is_r1_format(sol), "{sol}");
                    assert_eq!(FormatReward.score("", sol, r), Some(1.0));
                    let f: &dyn RewardFn = match kind {
                        TaskKind::Countdown => &CountdownReward,
                        TaskKind::Arithmetic => &ArithmeticReward,
                    };
                    assert_eq!(f.score("", sol, r), Some(1.0), "{r:?}");
                }
                assert_eq!(rows, generate_tasks(&cfg, 200, 7), "seeded");
            }
        }
    }

    #[test]
    fn format_only_solutions_keep_the_answer_and_drop_the_steps() {
        for kind in [TaskKind::Countdown, TaskKind::Arithmetic] {
            let cfg = TaskConfig { kind, ..Default::default() };
            for r in generate_tasks(&cfg, 50, 11) {
                let short = format_only(&r);
                let c = short["completion"].as_str().unwrap();
                let f: &dyn RewardFn = match kind {
                    TaskKind::Countdown => &CountdownReward,
                    TaskKind::Arithmetic => &ArithmeticReward,
                };
                assert_eq!(f.score("", c, &r), Some(1.0), "{c}");
                assert_eq!(FormatReward.score("", c, &r), Some(1.0), "{c}");
                assert!(!c.contains('='), "no worked steps: {c}");
            }
        }
        let r = generate_tasks(&TaskConfig { kind: TaskKind::Arithmetic, ..Default::default() }, 1, 0).remove(0);
        let expr = r["prompt"].as_str().unwrap().trim_start_matches("Compute ").trim_end_matches('.');
        assert!(format_only(&r)["completion"].as_str().unwrap().starts_with(&format!("<think>{expr}</think>")));
    }

    #[test]
    fn counting_solutions_count_in_unit_steps() {
        let cfg = TaskConfig {
            kind: TaskKind::Arithmetic,
            num_operands: 2,
            operators: "+-".into(),
            steps: StepStyle::Counting,
            ..Default::default()
        };
        for r in generate_tasks(&cfg, 100, 3) {
            let sol = r["solution"].as_str().unwrap();
            assert_eq!(ArithmeticReward.score("", sol, &r), Some(1.0), "{sol}");
            let prompt = r["prompt"].as_str().unwrap();
            let expr = prompt.trim_start_matches("Compute ").trim_end_matches('.');
            let (a, op, b) = match expr.find(['+', '-']) {
                Some(i) => (expr[..i].parse::<i64>().unwrap(), &expr[i..i + 1], expr[i + 1..].parse::<i64>().unwrap()),
                None => panic!("{expr}"),
            };
            let think = sol.trim_start_matches("<think>").split("</think>").next().unwrap();
            let counted: Vec<&str> = think.split(": ").nth(1).unwrap().split(' ').collect();
            assert_eq!(counted.len() as i64, b, "{sol}");
            let last: i64 = counted.last().unwrap().split(':').nth(1).unwrap().parse().unwrap();
            assert_eq!(last, if op == "+" { a + b } else { a - b }, "{sol}");
        }
    }
}
