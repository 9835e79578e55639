//! Reward functions: Rust code behind one trait, [`RewardFn`], that scores a completion given its
//! prompt and the dataset row (so extra columns such as `answer`, `numbers`, `target` reach it).
//!
//! A reward function returns `Some(score)`, or `None` when it does not apply to this row (TRL's
//! convention: such a function is left out of that completion's weighted sum). A non-finite score is
//! never used: the GRPO trainer stops with an error naming the function, the row and the completion.
//!
//! Built in:
//! * [`FormatReward`]: DeepSeek-R1's format, `<think>...</think>` then `<answer>...</answer>` and
//!   nothing else (whitespace allowed between and around), 1 or 0.
//! * [`CountdownReward`]: the answer is an arithmetic expression that uses each given number exactly
//!   once and equals the target; parsed with a recursive-descent parser and evaluated with exact
//!   rationals (no floating point, division by zero fails). 1 or 0.
//! * [`ArithmeticReward`]: the answer equals the row's `answer` exactly (as a rational number), 1 or 0.
//! * [`LengthPenalty`]: `-coef * max(0, chars - free_chars) / free_chars`, at most `-coef`.
//! * [`AnswerMatch`]: the completion (or its `<answer>`, when it has one) names the row's `answer`:
//!   equal after trimming whitespace and end punctuation, ignoring case. 1 or 0. For short answers
//!   (a word, a label, a colour) where [`ArithmeticReward`]'s number parsing does not apply.

use crate::datasets::Row;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A reward function.
pub trait RewardFn: Send + Sync {
    /// Name (a column name in the rollout store: letters, digits, `_`).
    fn name(&self) -> &str;
    /// Dataset columns every row must have (checked before training, errors name the row).
    fn required_columns(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Score one completion; `None` when the function does not apply.
    fn score(&self, prompt: &str, completion: &str, row: &Row) -> Option<f64>;
}

/// The text between the last `<answer>` and the following `</answer>`, trimmed.
pub fn extract_answer(completion: &str) -> Option<&str> {
    let start = completion.rfind("<answer>")? + "<answer>".len();
    let end = completion[start..].find("</answer>")? + start;
    Some(completion[start..end].trim())
}

/// Whether `completion` is exactly `<think>X</think> <answer>Y</answer>` (one of each tag, in order).
pub fn is_r1_format(completion: &str) -> bool {
    let s = completion.trim();
    let count = |t: &str| s.matches(t).count();
    if ["<think>", "</think>", "<answer>", "</answer>"].iter().any(|t| count(t) != 1) {
        return false;
    }
    let Some(rest) = s.strip_prefix("<think>") else { return false };
    let Some(close) = rest.find("</think>") else { return false };
    let after = rest[close + "</think>".len()..].trim_start();
    let Some(ans) = after.strip_prefix("<answer>") else { return false };
    ans.ends_with("</answer>")
}

/// DeepSeek-R1's format reward.
#[derive(Debug, Clone, Default)]
pub struct FormatReward;

impl RewardFn for FormatReward {
    fn name(&self) -> &str {
        "format"
    }
    fn score(&self, _prompt: &str, completion: &str, _row: &Row) -> Option<f64> {
        Some(if is_r1_format(completion) { 1.0 } else { 0.0 })
    }
}

// ---------------------------------------------------------------------------------------------
// Exact rational arithmetic and the expression parser
// ---------------------------------------------------------------------------------------------

/// An exact rational `num / den` with `den > 0`, in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    /// Numerator.
    pub num: i128,
    /// Denominator (positive).
    pub den: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Rational {
    /// `num / den`; `None` when `den == 0`.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let s = if den < 0 { -1 } else { 1 };
        Some(Rational { num: s * num / g, den: s * den / g })
    }
    /// An integer.
    pub fn int(n: i128) -> Self {
        Rational { num: n, den: 1 }
    }
    fn add(self, o: Self) -> Option<Self> {
        Rational::new(
            self.num.checked_mul(o.den)?.checked_add(o.num.checked_mul(self.den)?)?,
            self.den.checked_mul(o.den)?,
        )
    }
    fn sub(self, o: Self) -> Option<Self> {
        self.add(Rational { num: o.num.checked_neg()?, den: o.den })
    }
    fn mul(self, o: Self) -> Option<Self> {
        Rational::new(self.num.checked_mul(o.num)?, self.den.checked_mul(o.den)?)
    }
    fn div(self, o: Self) -> Option<Self> {
        Rational::new(self.num.checked_mul(o.den)?, self.den.checked_mul(o.num)?)
    }
    /// Parse an integer or decimal or `a/b` literal.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if let Some((a, b)) = t.split_once('/') {
            return Rational::parse(a)?.div(Rational::parse(b)?);
        }
        let (neg, t) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        let digits = format!("{int}{frac}");
        let num: i128 = digits.parse().ok()?;
        let den = 10i128.checked_pow(frac.len() as u32)?;
        Rational::new(if neg { -num } else { num }, den)
    }
}

/// A parsed expression: its exact value and the integer literals it uses, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The value.
    pub value: Rational,
    /// The number literals.
    pub numbers: Vec<i128>,
}

/// Why an expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprError {
    /// Not a well-formed expression over integers, `+ - * /` and parentheses.
    Syntax(String),
    /// Division by zero or overflow.
    Arithmetic,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    numbers: Vec<i128>,
    depth: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.s.get(self.i).copied()
    }
    fn expr(&mut self) -> Result<Rational, ExprError> {
        let mut v = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let r = self.term()?;
            v = if op == b'+' { v.add(r) } else { v.sub(r) }.ok_or(ExprError::Arithmetic)?;
        }
        Ok(v)
    }
    fn term(&mut self) -> Result<Rational, ExprError> {
        let mut v = self.factor()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            let r = self.factor()?;
            v = if op == b'*' { v.mul(r) } else { v.div(r) }.ok_or(ExprError::Arithmetic)?;
        }
        Ok(v)
    }
    fn factor(&mut self) -> Result<Rational, ExprError> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(ExprError::Syntax("nested too deeply".into()));
        }
        let out = match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let v = self.expr()?;
                if self.peek() != Some(b')') {
                    return Err(ExprError::Syntax(format!("expected ')' at byte {}", self.i)));
                }
                self.i += 1;
                Ok(v)
            }
            Some(b'-') => {
                self.i += 1;
                let v = self.factor()?;
                Rational::int(0).sub(v).ok_or(ExprError::Arithmetic)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).expect("ascii digits");
                let n: i128 = text.parse().map_err(|_| ExprError::Arithmetic)?;
                self.numbers.push(n);
                Ok(Rational::int(n))
            }
            Some(c) => Err(ExprError::Syntax(format!("unexpected '{}' at byte {}", c as char, self.i))),
            None => Err(ExprError::Syntax("unexpected end".into())),
        };
        self.depth -= 1;
        out
    }
}

/// Parse and evaluate an arithmetic expression (integers, `+ - * /`, unary minus, parentheses) exactly.
pub fn eval_expression(text: &str) -> Result<Evaluated, ExprError> {
    let mut p = Parser { s: text.as_bytes(), i: 0, numbers: Vec::new(), depth: 0 };
    let value = p.expr()?;
    if p.peek().is_some() {
        return Err(ExprError::Syntax(format!("trailing input at byte {}", p.i)));
    }
    Ok(Evaluated { value, numbers: p.numbers })
}

fn int_list(v: &Value) -> Option<Vec<i128>> {
    v.as_array()?.iter().map(|x| x.as_i64().map(i128::from)).collect()
}

fn rational_of(v: &Value) -> Option<Rational> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Rational::int(i as i128)),
            None => Rational::parse(&n.to_string()),
        },
        Value::String(s) => Rational::parse(s),
        _ => None,
    }
}

/// Score a countdown answer: 1 if `expr` uses each of `numbers` exactly once and equals `target`.
pub fn countdown_score(expr: &str, numbers: &[i128], target: Rational) -> f64 {
    // "a + b = t" is accepted: the part before '=' is the expression.
    let expr = expr.split('=').next().unwrap_or("");
    match eval_expression(expr) {
        Ok(e) => {
            let mut used = e.numbers.clone();
            let mut given = numbers.to_vec();
            used.sort_unstable();
            given.sort_unstable();
            if used == given && e.value == target {
                1.0
            } else {
                0.0
            }
        }
        Err(_) => 0.0,
    }
}

/// The countdown equation verifier (columns `numbers: [int]`, `target: int`).
#[derive(Debug, Clone, Default)]
pub struct CountdownReward;

impl RewardFn for CountdownReward {
    fn name(&self) -> &str {
        "countdown"
    }
    fn required_columns(&self) -> Vec<&'static str> {
        vec!["numbers", "target"]
    }
    fn score(&self, _prompt: &str, completion: &str, row: &Row) -> Option<f64> {
        let numbers = int_list(row.get("numbers")?)?;
        let target = rational_of(row.get("target")?)?;
        Some(extract_answer(completion).map_or(0.0, |a| countdown_score(a, &numbers, target)))
    }
}

/// Exact answer for arithmetic (column `answer`; the completion's `<answer>` must equal it as a number).
#[derive(Debug, Clone, Default)]
pub struct ArithmeticReward;

impl RewardFn for ArithmeticReward {
    fn name(&self) -> &str {
        "accuracy"
    }
    fn required_columns(&self) -> Vec<&'static str> {
        vec!["answer"]
    }
    fn score(&self, _prompt: &str, completion: &str, row: &Row) -> Option<f64> {
        let want = rational_of(row.get("answer")?)?;
        let got = extract_answer(completion).and_then(Rational::parse);
        Some(if got == Some(want) { 1.0 } else { 0.0 })
    }
}

/// A penalty on long completions.
#[derive(Debug, Clone)]
pub struct LengthPenalty {
    /// Characters allowed without penalty.
    pub free_chars: usize,
    /// Penalty at twice `free_chars` (and the most it gets).
    pub coef: f64,
}

impl RewardFn for LengthPenalty {
    fn name(&self) -> &str {
        "length"
    }
    fn score(&self, _prompt: &str, completion: &str, _row: &Row) -> Option<f64> {
        let n = completion.chars().count();
        let over = n.saturating_sub(self.free_chars) as f64 / self.free_chars.max(1) as f64;
        Some(-self.coef * over.min(1.0))
    }
}

/// The completion names the row's `answer` (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct AnswerMatch;

/// Lower case, without surrounding whitespace and end punctuation.
fn normalise_answer(s: &str) -> String {
    s.trim().trim_end_matches(['.', '!', '?', ',', ';', ':']).trim().to_lowercase()
}

impl RewardFn for AnswerMatch {
    fn name(&self) -> &str {
        "answer_match"
    }
    fn required_columns(&self) -> Vec<&'static str> {
        vec!["answer"]
    }
    fn score(&self, _prompt: &str, completion: &str, row: &Row) -> Option<f64> {
        let answer = match row.get("answer")? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let given = extract_answer(completion).unwrap_or(completion);
        Some((normalise_answer(given) == normalise_answer(&answer)) as u8 as f64)
    }
}

/// A reward function chosen in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardSpec {
    /// [`FormatReward`].
    Format {
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// [`CountdownReward`].
    Countdown {
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// [`ArithmeticReward`].
    Arithmetic {
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// [`AnswerMatch`].
    AnswerMatch {
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// [`LengthPenalty`].
    Length {
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
        /// Characters without penalty.
        free_chars: usize,
        /// Largest penalty.
        #[serde(default = "one")]
        coef: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl RewardSpec {
    /// Build the function and its weight.
    pub fn build(&self) -> (Box<dyn RewardFn>, f64) {
        match *self {
            RewardSpec::Format { weight } => (Box::new(FormatReward), weight),
            RewardSpec::Countdown { weight } => (Box::new(CountdownReward), weight),
            RewardSpec::Arithmetic { weight } => (Box::new(ArithmeticReward), weight),
            RewardSpec::AnswerMatch { weight } => (Box::new(AnswerMatch), weight),
            RewardSpec::Length { weight, free_chars, coef } => (Box::new(LengthPenalty { free_chars, coef }), weight),
        }
    }
}

/// Scores of every function for every completion, and the weighted totals.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredBatch {
    /// `[functions][completions]`, `NaN` where a function returned `None`.
    pub per_function: Vec<Vec<f64>>,
    /// Weighted sum over the functions that applied.
    pub total: Vec<f64>,
}

/// Score `completions[k]` (for `prompts[k]`, `rows[k]`) with every function; `locs[k]` names the row in
/// errors. A non-finite score, or a completion no function applies to, is an error.
pub fn score_all(
    fns: &[(Box<dyn RewardFn>, f64)],
    prompts: &[String],
    completions: &[String],
    rows: &[&Row],
    locs: &[String],
) -> Result<ScoredBatch> {
    let n = completions.len();
    let mut per_function = vec![vec![f64::NAN; n]; fns.len()];
    let mut total = vec![0.0; n];
    for k in 0..n {
        let mut any = false;
        for (f, (rf, w)) in fns.iter().enumerate() {
            if let Some(s) = rf.score(&prompts[k], &completions[k], rows[k]) {
                if !s.is_finite() {
                    return Err(Error::invalid(
                        format!("reward function `{}`", rf.name()),
                        format!(
                            "returned {s} for {} (completion {:?}); rewards must be finite",
                            locs[k], completions[k]
                        ),
                    ));
                }
                per_function[f][k] = s;
                total[k] += w * s;
                any = true;
            }
        }
        if !any {
            return Err(Error::invalid(
                "rewards",
                format!("no reward function applies to {} (every function returned None)", locs[k]),
            ));
        }
    }
    Ok(ScoredBatch { per_function, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn format_reward() {
        assert!(is_r1_format("<think>3+4=7</think><answer>7</answer>"));
        assert!(is_r1_format(" <think>\nx\n</think>\n<answer>\n7\n</answer>\n"));
        assert!(!is_r1_format("<think>x</think><answer>7</answer> extra"));
        assert!(!is_r1_format("<answer>7</answer><think>x</think>"));
        assert!(!is_r1_format("<think>x</think><think>y</think><answer>7</answer>"));
        assert!(!is_r1_format("<think>x<answer>7</answer>"));
    }

    #[test]
    fn parser_is_exact_and_strict() {
        let e = eval_expression("(25 - 5) * 3 / 4").unwrap();
        assert_eq!(e.value, Rational::int(15));
        assert_eq!(e.numbers, vec![25, 5, 3, 4]);
        assert_eq!(eval_expression("1/3*3").unwrap().value, Rational::int(1));
        assert_eq!(eval_expression("7/2").unwrap().value, Rational::new(7, 2).unwrap());
        assert_eq!(eval_expression("-(2+3)").unwrap().value, Rational::int(-5));
        assert_eq!(eval_expression("5/(3-3)"), Err(ExprError::Arithmetic));
        assert!(matches!(eval_expression("2 + "), Err(ExprError::Syntax(_))));
        assert!(matches!(eval_expression("2 3"), Err(ExprError::Syntax(_))));
        assert!(matches!(eval_expression("(2+3"), Err(ExprError::Syntax(_))));
        assert!(matches!(eval_expression("import os"), Err(ExprError::Syntax(_))));
        assert!(eval_expression(&"(".repeat(1000)).is_err());
    }

    #[test]
    fn countdown_checks_each_number_once() {
        let r = row(json!({"numbers": [3, 5, 7], "target": 22}));
        let f = CountdownReward;
        let s = |c: &str| f.score("", c, &r).unwrap();
        assert_eq!(s("<answer>3*5+7</answer>"), 1.0);
        assert_eq!(s("<answer>7+3*5 = 22</answer>"), 1.0);
        assert_eq!(s("<answer>3*5+7+0</answer>"), 0.0, "an extra number");
        assert_eq!(s("<answer>5*5-3</answer>"), 0.0, "5 twice, 7 unused");
        assert_eq!(s("<answer>3*5+8-1</answer>"), 0.0);
        assert_eq!(s("3*5+7"), 0.0, "no answer tag");
        assert_eq!(s("<answer>(3+5)*7</answer>"), 0.0, "wrong value");
        assert!(f.score("", "x", &row(json!({"target": 1}))).is_none());
    }

    #[test]
    fn arithmetic_and_length() {
        let r = row(json!({"answer": "12"}));
        assert_eq!(ArithmeticReward.score("", "<answer> 12 </answer>", &r), Some(1.0));
        assert_eq!(ArithmeticReward.score("", "<answer>12.0</answer>", &r), Some(1.0));
        assert_eq!(ArithmeticReward.score("", "<answer>13</answer>", &r), Some(0.0));
        assert_eq!(ArithmeticReward.score("", "12", &r), Some(0.0));
        let l = LengthPenalty { free_chars: 10, coef: 0.5 };
        assert_eq!(l.score("", "short", &r), Some(0.0));
        assert_eq!(l.score("", &"x".repeat(15), &r), Some(-0.25));
        assert_eq!(l.score("", &"x".repeat(100), &r), Some(-0.5));
    }

    #[test]
    fn answer_match_ignores_case_space_and_end_punctuation() {
        let r = row(json!({"answer": "Red"}));
        assert_eq!(AnswerMatch.score("", " red.\n", &r), Some(1.0));
        assert_eq!(AnswerMatch.score("", "<think>x</think><answer>RED</answer>", &r), Some(1.0));
        assert_eq!(AnswerMatch.score("", "reddish", &r), Some(0.0));
        assert_eq!(AnswerMatch.score("", "blue", &r), Some(0.0));
        assert_eq!(AnswerMatch.score("", "7", &row(json!({"answer": 7}))), Some(1.0));
        assert!(AnswerMatch.score("", "red", &row(json!({}))).is_none());
    }

    struct Nan;
    impl RewardFn for Nan {
        fn name(&self) -> &str {
            "nan"
        }
        fn score(&self, _: &str, _: &str, _: &Row) -> Option<f64> {
            Some(f64::NAN)
        }
    }

    #[test]
    fn nan_reward_is_an_error_naming_the_function_and_row() {
        let r = row(json!({}));
        let fns: Vec<(Box<dyn RewardFn>, f64)> = vec![(Box::new(FormatReward), 1.0), (Box::new(Nan), 1.0)];
        let e = score_all(&fns, &["p".into()], &["c".into()], &[&r], &["data.jsonl:3".into()]).unwrap_err().to_string();
        assert!(e.contains("`nan`") && e.contains("data.jsonl:3"), "{e}");
    }
}
