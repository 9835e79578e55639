//! The grid world of S. Zhao's *Mathematical Foundations of Reinforcement Learning*, with the book's semantics.
//!
//! * Cells are `(row, col)`, 1-based, row 1 at the top. States are numbered row-major from 0:
//!   `s = (row - 1) * cols + (col - 1)`.
//! * Actions, in the book's order: up, right, down, left, stay (indices 0..5). A 1-D grid (one row)
//!   may use the three actions left, stay, right instead ([`ActionSet::Linear`]).
//! * Moving off the grid leaves the agent where it is and pays `r_boundary`. Forbidden cells can be
//!   entered and stayed in; every entry or stay pays `r_forbidden`. Entering or staying at the target
//!   pays `r_target`. Every other move pays `r_other`.
//! * The target is not absorbing: planning examples let the agent keep collecting `r_target` by
//!   staying. With [`GridWorldConfig::terminate_at_target`] (the path-finding tasks of chapters 7-8) an
//!   episode ends when the target is entered, and the model treats the target as absorbing with reward 0.
//! * Options: forbidden cells as walls (the book's official Python code: bumping into one leaves the
//!   agent in place and pays `r_forbidden`); bouncing off the border from a forbidden cell paying
//!   `r_boundary + r_forbidden` (what the book's chapter 5 figures used) instead of `r_boundary`.

pub mod render;

use rand::Rng as _;
use rlox_core::env::{Env, Info, SetState, Step};
use rlox_core::mdp::Mdp;
use rlox_core::seeding::{rng_from_seed, Rng};
use rlox_core::spaces::{Discrete, Space};
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Which actions the grid world offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActionSet {
    /// up, right, down, left, stay (the book's a1..a5).
    #[default]
    Five,
    /// left, stay, right: for 1-D grids of one row (the book's 1x2 and 1x3 examples).
    Linear,
}

impl ActionSet {
    /// Number of actions.
    pub fn len(self) -> usize {
        match self {
            ActionSet::Five => 5,
            ActionSet::Linear => 3,
        }
    }

    /// Always false: an action set has actions.
    pub fn is_empty(self) -> bool {
        false
    }

    /// The letter of each action in policy strings.
    pub fn letters(self) -> &'static [char] {
        match self {
            ActionSet::Five => &['U', 'R', 'D', 'L', 'S'],
            ActionSet::Linear => &['L', 'S', 'R'],
        }
    }

    /// `(d_row, d_col)` of each action.
    fn delta(self, action: usize) -> (i64, i64) {
        match (self, action) {
            (ActionSet::Five, 0) => (-1, 0),
            (ActionSet::Five, 1) => (0, 1),
            (ActionSet::Five, 2) => (1, 0),
            (ActionSet::Five, 3) => (0, -1),
            (ActionSet::Linear, 0) => (0, -1),
            (ActionSet::Linear, 2) => (0, 1),
            _ => (0, 0),
        }
    }

    /// Whether `action` is the stay action.
    pub fn is_stay(self, action: usize) -> bool {
        self.delta(action) == (0, 0)
    }
}

/// A 1-based grid cell `(row, col)`.
pub type Cell = (usize, usize);

/// Everything that defines a grid world. Defaults are the book's 5x5 example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridWorldConfig {
    /// Number of rows (> 0).
    pub rows: usize,
    /// Number of columns (> 0).
    pub cols: usize,
    /// Forbidden cells, 1-based `(row, col)`.
    pub forbidden: Vec<Cell>,
    /// The target cell (must not be forbidden).
    pub target: Cell,
    /// Start cell of episodes; `None` starts each episode in a uniformly random cell (seeded).
    pub start: Option<Cell>,
    /// Reward for trying to leave the grid.
    pub r_boundary: f64,
    /// Reward for entering or staying in a forbidden cell.
    pub r_forbidden: f64,
    /// Reward for entering or staying at the target.
    pub r_target: f64,
    /// Reward for every other move.
    pub r_other: f64,
    /// Actions offered.
    pub actions: ActionSet,
    /// Forbidden cells are walls (the official code's semantics) instead of enterable cells.
    pub forbidden_as_wall: bool,
    /// Bouncing off the border from a forbidden cell pays `r_boundary + r_forbidden`.
    pub additive_border_from_forbidden: bool,
    /// Episodes end when the target is entered (and the model makes the target absorbing with reward 0).
    pub terminate_at_target: bool,
}

impl Default for GridWorldConfig {
    fn default() -> Self {
        preset("book-5x5").expect("built-in preset")
    }
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["book-5x5", "book-3x3", "book-2x2", "book-1x2", "book-1x3"];

/// The book's example layouts with r_boundary = r_forbidden = -1, r_target = 1, r_other = 0.
///
/// * `book-5x5`: forbidden (2,2) (2,3) (3,3) (4,2) (4,4) (5,2), target (4,3);
/// * `book-3x3`: forbidden (2,3) (3,1), target (3,3);
/// * `book-2x2`: forbidden (1,2), target (2,2);
/// * `book-1x2`: target (1,2), actions left/stay/right (chapter 4's policy-iteration example);
/// * `book-1x3`: target (1,3), actions left/stay/right.
pub fn preset(name: &str) -> Result<GridWorldConfig> {
    let base = |rows, cols, forbidden: &[Cell], target, actions| GridWorldConfig {
        rows,
        cols,
        forbidden: forbidden.to_vec(),
        target,
        start: None,
        r_boundary: -1.0,
        r_forbidden: -1.0,
        r_target: 1.0,
        r_other: 0.0,
        actions,
        forbidden_as_wall: false,
        additive_border_from_forbidden: false,
        terminate_at_target: false,
    };
    Ok(match name {
        "book-5x5" => base(5, 5, &[(2, 2), (2, 3), (3, 3), (4, 2), (4, 4), (5, 2)], (4, 3), ActionSet::Five),
        "book-3x3" => base(3, 3, &[(2, 3), (3, 1)], (3, 3), ActionSet::Five),
        "book-2x2" => base(2, 2, &[(1, 2)], (2, 2), ActionSet::Five),
        "book-1x2" => base(1, 2, &[], (1, 2), ActionSet::Linear),
        "book-1x3" => base(1, 3, &[], (1, 3), ActionSet::Linear),
        _ => return Err(Error::Unknown { kind: "grid-world preset", name: name.into(), known: PRESETS.join(", ") }),
    })
}

/// SplitMix64: the hash behind [`random_layout`], simple enough to reproduce in NumPy (see bench/).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A large random grid world with the book's rewards: cell `i` (row-major, from 0) is forbidden when
/// `splitmix64(seed + i) % 100 < forbidden_percent`; the target is the centre cell (never forbidden).
///
/// The rule is a fixed hash rather than an RNG stream so that other languages build the same grid
/// (the NumPy value-iteration benchmark does).
pub fn random_layout(rows: usize, cols: usize, forbidden_percent: u64, seed: u64) -> GridWorldConfig {
    let target = (rows / 2 + 1, cols / 2 + 1);
    let forbidden = (0..rows * cols)
        .filter(|&i| splitmix64(seed.wrapping_add(i as u64)) % 100 < forbidden_percent)
        .map(|i| (i / cols + 1, i % cols + 1))
        .filter(|&cell| cell != target)
        .collect();
    GridWorldConfig { rows, cols, forbidden, target, ..preset("book-5x5").expect("built-in preset") }
}

/// Parse a cell list like `"2,2;2,3;4,3"` or `"(2,2) (2,3)"` into 1-based cells.
pub fn parse_cells(text: &str) -> Result<Vec<Cell>> {
    let cleaned: String = text.chars().map(|c| if c == '(' || c == ')' { ' ' } else { c }).collect();
    let mut cells = Vec::new();
    for item in cleaned.split(|c: char| c == ';' || c.is_whitespace()).filter(|s| !s.trim().is_empty()) {
        let parts: Vec<&str> = item.split(',').map(str::trim).collect();
        let bad = || Error::invalid("cell list", format!("'{item}' in '{text}' is not ROW,COL (1-based integers)"));
        if parts.len() != 2 {
            return Err(bad());
        }
        let r: usize = parts[0].parse().map_err(|_| bad())?;
        let c: usize = parts[1].parse().map_err(|_| bad())?;
        cells.push((r, c));
    }
    Ok(cells)
}

/// What a move does, before rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    OffGrid,
    Wall,
    To(usize),
}

/// The grid world: an [`Env`] (observations are state indices) and an [`Mdp`].
#[derive(Debug, Clone)]
pub struct GridWorld {
    config: GridWorldConfig,
    forbidden: Vec<bool>,
    target: usize,
    state: usize,
    rng: Rng,
    needs_reset: bool,
}

impl GridWorld {
    /// Build and validate a grid world.
    ///
    /// Errors: a grid of size 0; a cell outside the grid; the target (or the start) in a forbidden
    /// cell; linear actions on a grid of more than one row; non-finite rewards.
    pub fn new(config: GridWorldConfig) -> Result<Self> {
        if config.rows == 0 || config.cols == 0 {
            return Err(Error::invalid(
                "grid size",
                format!("{}x{}: rows and cols must be at least 1", config.rows, config.cols),
            ));
        }
        let inside = |(r, c): Cell| r >= 1 && c >= 1 && r <= config.rows && c <= config.cols;
        for &cell in &config.forbidden {
            if !inside(cell) {
                return Err(Error::invalid(
                    "forbidden cell",
                    format!("{cell:?} is outside the {}x{} grid", config.rows, config.cols),
                ));
            }
        }
        if !inside(config.target) {
            return Err(Error::invalid(
                "target",
                format!("{:?} is outside the {}x{} grid", config.target, config.rows, config.cols),
            ));
        }
        if config.forbidden.contains(&config.target) {
            return Err(Error::invalid("target", format!("{:?} is a forbidden cell", config.target)));
        }
        if let Some(start) = config.start {
            if !inside(start) {
                return Err(Error::invalid(
                    "start",
                    format!("{start:?} is outside the {}x{} grid", config.rows, config.cols),
                ));
            }
            if config.forbidden_as_wall && config.forbidden.contains(&start) {
                return Err(Error::invalid("start", format!("{start:?} is a wall")));
            }
        }
        if config.actions == ActionSet::Linear && config.rows != 1 {
            return Err(Error::invalid(
                "actions",
                format!("linear actions need a grid of one row, not {}", config.rows),
            ));
        }
        for (name, v) in [
            ("r_boundary", config.r_boundary),
            ("r_forbidden", config.r_forbidden),
            ("r_target", config.r_target),
            ("r_other", config.r_other),
        ] {
            if !v.is_finite() {
                return Err(Error::invalid(name, format!("{v} is not a finite number")));
            }
        }
        let n = config.rows * config.cols;
        let mut forbidden = vec![false; n];
        for &(r, c) in &config.forbidden {
            forbidden[(r - 1) * config.cols + (c - 1)] = true;
        }
        let target = (config.target.0 - 1) * config.cols + (config.target.1 - 1);
        Ok(GridWorld { config, forbidden, target, state: 0, rng: rng_from_seed(0), needs_reset: true })
    }

    /// A preset by name.
    pub fn from_preset(name: &str) -> Result<Self> {
        Self::new(preset(name)?)
    }

    /// The configuration.
    pub fn config(&self) -> &GridWorldConfig {
        &self.config
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.config.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.config.cols
    }

    /// The state index of a 1-based cell.
    pub fn state_of(&self, (r, c): Cell) -> usize {
        (r - 1) * self.config.cols + (c - 1)
    }

    /// The 1-based cell of a state index.
    pub fn cell_of(&self, s: usize) -> Cell {
        (s / self.config.cols + 1, s % self.config.cols + 1)
    }

    /// Whether state `s` is forbidden.
    pub fn is_forbidden(&self, s: usize) -> bool {
        self.forbidden[s]
    }

    /// The target's state index.
    pub fn target_state(&self) -> usize {
        self.target
    }

    /// The current state.
    pub fn state(&self) -> usize {
        self.state
    }

    /// Put the agent in state `s` (exploring starts, tests). Errors when `s` is out of range.
    pub fn set_state(&mut self, s: usize) -> Result<()> {
        if s >= self.n_states() {
            return Err(Error::invalid("state", format!("{s} >= {} states", self.n_states())));
        }
        self.state = s;
        self.needs_reset = false;
        Ok(())
    }

    fn attempt(&self, s: usize, action: usize) -> Move {
        let (dr, dc) = self.config.actions.delta(action);
        let (r, c) = ((s / self.config.cols) as i64 + dr, (s % self.config.cols) as i64 + dc);
        if r < 0 || c < 0 || r >= self.config.rows as i64 || c >= self.config.cols as i64 {
            return Move::OffGrid;
        }
        let next = r as usize * self.config.cols + c as usize;
        if self.config.forbidden_as_wall && self.forbidden[next] && next != s {
            return Move::Wall;
        }
        Move::To(next)
    }

    /// The deterministic outcome `(next_state, reward)` of `action` in `s`, by the rules in the module docs.
    pub fn outcome(&self, s: usize, action: usize) -> (usize, f64) {
        let cfg = &self.config;
        match self.attempt(s, action) {
            Move::OffGrid => {
                let extra = if cfg.additive_border_from_forbidden && self.forbidden[s] { cfg.r_forbidden } else { 0.0 };
                (s, cfg.r_boundary + extra)
            }
            Move::Wall => (s, cfg.r_forbidden),
            Move::To(next) => {
                let reward = if next == self.target {
                    cfg.r_target
                } else if self.forbidden[next] {
                    cfg.r_forbidden
                } else {
                    cfg.r_other
                };
                (next, reward)
            }
        }
    }

    /// Whether the model treats `s` as absorbing (the target of an episodic task).
    pub fn is_absorbing(&self, s: usize) -> bool {
        self.config.terminate_at_target && s == self.target
    }

    /// Parse a policy string (rows separated by '/', one action letter per cell) into actions per state.
    pub fn parse_policy(&self, text: &str) -> Result<Vec<usize>> {
        let letters = self.config.actions.letters();
        let rows: Vec<&str> = text.trim().split('/').collect();
        if rows.len() != self.config.rows {
            return Err(Error::invalid(
                "policy",
                format!("'{text}' has {} rows separated by '/', the grid has {}", rows.len(), self.config.rows),
            ));
        }
        let mut actions = Vec::with_capacity(self.n_states());
        for (i, row) in rows.iter().enumerate() {
            let chars: Vec<char> = row.trim().chars().collect();
            if chars.len() != self.config.cols {
                return Err(Error::invalid(
                    "policy",
                    format!(
                        "row {} '{row}' has {} cells, the grid has {} columns",
                        i + 1,
                        chars.len(),
                        self.config.cols
                    ),
                ));
            }
            for (j, ch) in chars.iter().enumerate() {
                let a = letters.iter().position(|l| l.eq_ignore_ascii_case(ch)).ok_or_else(|| {
                    Error::invalid(
                        "policy",
                        format!(
                            "unknown action letter '{ch}' at row {}, column {}; use {}",
                            i + 1,
                            j + 1,
                            letters.iter().collect::<String>()
                        ),
                    )
                })?;
                actions.push(a);
            }
        }
        Ok(actions)
    }

    /// Format actions per state as a policy string.
    pub fn format_policy(&self, actions: &[usize]) -> String {
        let letters = self.config.actions.letters();
        actions
            .chunks(self.config.cols)
            .map(|row| row.iter().map(|&a| letters.get(a).copied().unwrap_or('?')).collect::<String>())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A terminal drawing: one character per cell for the policy (arrows; `o` for stay), `#` marks
    /// forbidden cells and `T` the target; values (if given) printed as a grid beside it.
    pub fn render_text(&self, actions: Option<&[usize]>, values: Option<&[f64]>) -> String {
        let mut out = String::new();
        let glyph = |a: usize| -> char {
            match (self.config.actions, a) {
                (ActionSet::Five, 0) => '↑',
                (ActionSet::Five, 1) => '→',
                (ActionSet::Five, 2) => '↓',
                (ActionSet::Five, 3) => '←',
                (ActionSet::Linear, 0) => '←',
                (ActionSet::Linear, 2) => '→',
                _ => 'o',
            }
        };
        for r in 0..self.config.rows {
            for c in 0..self.config.cols {
                let s = r * self.config.cols + c;
                let mark = if s == self.target {
                    'T'
                } else if self.forbidden[s] {
                    '#'
                } else {
                    '.'
                };
                match actions {
                    Some(a) => {
                        let _ = write!(out, "{mark}{} ", glyph(a[s]));
                    }
                    None => {
                        let _ = write!(out, "{mark} ");
                    }
                }
            }
            if let Some(v) = values {
                out.push_str("   ");
                for c in 0..self.config.cols {
                    let _ = write!(out, "{:>7.2}", v[r * self.config.cols + c]);
                }
            }
            out.push('\n');
        }
        out
    }
}

impl Mdp for GridWorld {
    fn n_states(&self) -> usize {
        self.config.rows * self.config.cols
    }
    fn n_actions(&self) -> usize {
        self.config.actions.len()
    }
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        if self.is_absorbing(state) {
            out.push((state, 1.0));
        } else {
            out.push((self.outcome(state, action).0, 1.0));
        }
    }
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        if self.is_absorbing(state) {
            0.0
        } else {
            self.outcome(state, action).1
        }
    }
    fn is_terminal(&self, state: usize) -> bool {
        self.is_absorbing(state)
    }
}

/// The state layout is `[s]`, the state index (exploring starts use it).
impl SetState for GridWorld {
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        match state {
            [s] if s.fract() == 0.0 && *s >= 0.0 => GridWorld::set_state(self, *s as usize),
            _ => Err(Error::invalid("state", format!("{state:?}: the grid world's state is one state index"))),
        }
    }
    fn state(&self) -> Vec<f64> {
        vec![self.state as f64]
    }
}

impl Env for GridWorld {
    type Obs = usize;
    type Action = usize;

    fn id(&self) -> &str {
        "gridworld"
    }
    fn observation_space(&self) -> Space {
        Discrete::new(self.n_states()).into()
    }
    fn action_space(&self) -> Space {
        Discrete::new(self.n_actions()).into()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(usize, Info)> {
        if let Some(seed) = seed {
            self.rng = rng_from_seed(seed);
        }
        self.state = match self.config.start {
            Some(cell) => self.state_of(cell),
            None => loop {
                let s = self.rng.random_range(0..self.n_states());
                if !(self.config.forbidden_as_wall && self.forbidden[s]) {
                    break s;
                }
            },
        };
        self.needs_reset = false;
        Ok((self.state, Info::new()))
    }
    fn step(&mut self, action: &usize) -> Result<Step<usize>> {
        if *action >= self.n_actions() {
            return Err(Error::InvalidAction {
                env: "gridworld".into(),
                action: action.to_string(),
                space: self.action_space().to_string(),
            });
        }
        if self.needs_reset {
            return Err(Error::NeedsReset {
                env: "gridworld".into(),
                when: "before reset() or after the episode ended",
            });
        }
        let (next, reward) = self.outcome(self.state, *action);
        self.state = next;
        let terminated = self.config.terminate_at_target && next == self.target;
        self.needs_reset = terminated;
        Ok(Step { obs: next, reward, terminated, truncated: false, info: Info::new() })
    }
}

#[cfg(test)]
mod tests;
