//! FrozenLake-v1 (Gymnasium 1.4): walk from the start tile `S` to the goal `G` across frozen tiles
//! `F` without falling into a hole `H`.
//!
//! * States: `row * ncol + col`. Actions: 0 left, 1 down, 2 right, 3 up. Moves into the border
//!   leave the agent in place.
//! * Slippery ice (the default): the intended direction succeeds with `success_rate` (default 1/3)
//!   and each perpendicular direction happens with `(1 - success_rate) / 2`. Gymnasium lists the
//!   three outcomes in the order (action - 1) mod 4, action, (action + 1) mod 4 and computes the
//!   probabilities in exactly these two expressions, so with the defaults the perpendicular entries
//!   are `0.33333333333333337` and the intended one `0.3333333333333333`; rlox uses the same
//!   expressions and therefore the same floats.
//! * Rewards follow `reward_schedule = (goal, hole, frozen)`, default `(1, 0, 0)`, paid on entering a
//!   tile (the start tile counts as frozen). Entering `G` or `H` terminates.
//! * Holes and the goal are absorbing in Gymnasium's table (probability 1, same state, reward 0,
//!   terminated), so the [`Mdp`] view needs no change there.
//! * Registered time limits: 100 steps for `FrozenLake-v1`, 200 for `FrozenLake8x8-v1`.
//!   `gymnasium.make("FrozenLake-v1", map_name="8x8")` keeps the limit of 100, and so does
//!   [`frozen_lake_v1_with`].

use super::{invalid_action, state_from_slice, GymP, Outcome, Phase, TransitionTable};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{np_random, Generator};
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Discrete, Env, Error, Info, InfoValue, Mdp, Result, Space, Step};

/// Action 0: move left.
pub const LEFT: usize = 0;
/// Action 1: move down.
pub const DOWN: usize = 1;
/// Action 2: move right.
pub const RIGHT: usize = 2;
/// Action 3: move up.
pub const UP: usize = 3;

/// Gymnasium's built-in `"4x4"` map.
pub const MAP_4X4: [&str; 4] = ["SFFF", "FHFH", "FFFH", "HFFG"];

/// Gymnasium's built-in `"8x8"` map.
pub const MAP_8X8: [&str; 8] =
    ["SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG"];

/// Which lake to build (Gymnasium's `map_name` / `desc` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeMap {
    /// `map_name="4x4"` (Gymnasium's default).
    FourByFour,
    /// `map_name="8x8"`.
    EightByEight,
    /// `desc=[...]`: rows of `S`, `F`, `H`, `G`. Gymnasium's `desc=None, map_name=None` (a random
    /// 8x8 map) is `Custom(generate_random_map(8, 0.8, seed)?)`.
    Custom(Vec<String>),
}

impl LakeMap {
    /// The rows of the map.
    pub fn rows(&self) -> Vec<String> {
        match self {
            LakeMap::FourByFour => MAP_4X4.iter().map(|r| r.to_string()).collect(),
            LakeMap::EightByEight => MAP_8X8.iter().map(|r| r.to_string()).collect(),
            LakeMap::Custom(rows) => rows.clone(),
        }
    }
}

/// The arguments of `gymnasium.make("FrozenLake-v1", ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenLakeConfig {
    /// The map; default the 4x4 one.
    pub map: LakeMap,
    /// Whether moves can slip sideways; default `true`.
    pub is_slippery: bool,
    /// Probability of moving in the intended direction on slippery ice; default `1/3`. Must lie in
    /// `[0, 1]`. Ignored when `is_slippery` is false.
    pub success_rate: f64,
    /// Rewards for entering the goal, a hole, and a frozen (or start) tile; default `[1, 0, 0]`.
    pub reward_schedule: [f64; 3],
}

impl Default for FrozenLakeConfig {
    fn default() -> Self {
        FrozenLakeConfig {
            map: LakeMap::FourByFour,
            is_slippery: true,
            success_rate: 1.0 / 3.0,
            reward_schedule: [1.0, 0.0, 0.0],
        }
    }
}

/// The FrozenLake environment; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct FrozenLake {
    id: String,
    desc: Vec<Vec<u8>>,
    ncol: usize,
    start: usize,
    table: TransitionTable,
    state: usize,
    rng: Generator,
    phase: Phase,
}

impl FrozenLake {
    /// Build the lake described by `config` with id `FrozenLake-v1` (no time limit: see
    /// [`frozen_lake_v1_with`]).
    ///
    /// Errors on an invalid map (see [`validate_map`]) or a `success_rate` outside `[0, 1]`.
    pub fn new(config: FrozenLakeConfig) -> Result<Self> {
        let rows = config.map.rows();
        validate_map(&rows)?;
        if !(0.0..=1.0).contains(&config.success_rate) {
            return Err(Error::invalid(
                "FrozenLake success_rate",
                format!("{} is not a probability in [0, 1]", config.success_rate),
            ));
        }
        if let Some(r) = config.reward_schedule.iter().find(|r| !r.is_finite()) {
            return Err(Error::invalid("FrozenLake reward_schedule", format!("{r} is not a finite reward")));
        }
        let desc: Vec<Vec<u8>> = rows.iter().map(|r| r.as_bytes().to_vec()).collect();
        let (nrow, ncol) = (desc.len(), desc[0].len());
        let start = (0..nrow * ncol).find(|&s| desc[s / ncol][s % ncol] == b'S').expect("validated: one S");
        let table = build_table(&desc, &config);
        Ok(FrozenLake {
            id: "FrozenLake-v1".to_string(),
            desc,
            ncol,
            start,
            table,
            state: start,
            rng: np_random(None).0,
            phase: Phase::NotStarted,
        })
    }

    /// The map as rows of tile letters.
    pub fn desc(&self) -> Vec<String> {
        self.desc.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect()
    }

    /// Number of rows of the map.
    pub fn nrow(&self) -> usize {
        self.desc.len()
    }

    /// Number of columns of the map.
    pub fn ncol(&self) -> usize {
        self.ncol
    }

    /// The tile letter (`b'S'`, `b'F'`, `b'H'` or `b'G'`) of state `s`.
    pub fn tile(&self, s: usize) -> u8 {
        self.desc[s / self.ncol][s % self.ncol]
    }

    /// The start state.
    pub fn start_state(&self) -> usize {
        self.start
    }

    /// Gymnasium's transition table.
    pub fn table(&self) -> &TransitionTable {
        &self.table
    }

    /// Gymnasium's `env.unwrapped.P` as plain data.
    pub fn gym_p(&self) -> GymP {
        self.table.to_gym_p()
    }
}

/// Gymnasium's table: an absorbing row for holes and the goal, otherwise one outcome per
/// direction actually taken (one, or three on slippery ice).
fn build_table(desc: &[Vec<u8>], config: &FrozenLakeConfig) -> TransitionTable {
    let (nrow, ncol) = (desc.len(), desc[0].len());
    let fail_rate = (1.0 - config.success_rate) / 2.0;
    let is_end = |s: usize| matches!(desc[s / ncol][s % ncol], b'G' | b'H');
    // The outcome of actually moving in `direction` from (row, col), probability filled by the caller.
    let moved = |row: usize, col: usize, direction: usize, prob: f64| {
        let (r, c) = match direction {
            LEFT => (row, col.saturating_sub(1)),
            DOWN => ((row + 1).min(nrow - 1), col),
            RIGHT => (row, (col + 1).min(ncol - 1)),
            _ => (row.saturating_sub(1), col),
        };
        let letter = desc[r][c];
        let reward = match letter {
            b'G' => config.reward_schedule[0],
            b'H' => config.reward_schedule[1],
            _ => config.reward_schedule[2],
        };
        Outcome { prob, next: r * ncol + c, reward, terminated: matches!(letter, b'G' | b'H') }
    };
    TransitionTable::build(
        nrow * ncol,
        4,
        |s, a, out| {
            let (row, col) = (s / ncol, s % ncol);
            if is_end(s) {
                out.push(Outcome { prob: 1.0, next: s, reward: 0.0, terminated: true });
            } else if config.is_slippery {
                for b in [(a + 3) % 4, a, (a + 1) % 4] {
                    let prob = if b == a { config.success_rate } else { fail_rate };
                    out.push(moved(row, col, b, prob));
                }
            } else {
                out.push(moved(row, col, a, 1.0));
            }
        },
        is_end,
    )
}

/// Check a custom map: at least one row, all rows of the same non-zero length, only the letters
/// `S`, `F`, `H`, `G`, exactly one `S` and at least one `G`.
///
/// Gymnasium itself does not check `desc`; it accepts several `S` tiles (starting uniformly among
/// them) and maps without a goal. rlox rejects both, since neither is a FrozenLake one would want.
pub fn validate_map(rows: &[String]) -> Result<()> {
    let bad = |why: String| Err(Error::invalid("FrozenLake map", why));
    let Some(first) = rows.first() else {
        return bad("the map has no rows".to_string());
    };
    if first.is_empty() {
        return bad("row 0 is empty".to_string());
    }
    let width = first.chars().count();
    let mut starts = Vec::new();
    let mut goals = 0;
    for (r, row) in rows.iter().enumerate() {
        let n = row.chars().count();
        if n != width {
            return bad(format!("row {r} ({row:?}) has {n} tiles but row 0 has {width}; the map must be rectangular"));
        }
        for (c, ch) in row.chars().enumerate() {
            match ch {
                'S' => starts.push((r, c)),
                'G' => goals += 1,
                'F' | 'H' => {}
                other => {
                    return bad(format!(
                        "row {r} ({row:?}) has {other:?} at column {c}; only 'S', 'F', 'H' and 'G' are allowed"
                    ))
                }
            }
        }
    }
    if starts.len() != 1 {
        return bad(format!("expected exactly one start tile 'S', found {} at (row, column) {starts:?}", starts.len()));
    }
    if goals == 0 {
        return bad("the map has no goal tile 'G'".to_string());
    }
    Ok(())
}

/// Whether a valid map has a path of non-hole tiles (4-neighbour moves) from `S` to a `G`.
///
/// Maps that fail [`validate_map`] have no path by definition.
pub fn has_path(rows: &[String]) -> bool {
    if validate_map(rows).is_err() {
        return false;
    }
    let desc: Vec<&[u8]> = rows.iter().map(|r| r.as_bytes()).collect();
    let (nrow, ncol) = (desc.len(), desc[0].len());
    let start = (0..nrow * ncol).find(|&s| desc[s / ncol][s % ncol] == b'S').unwrap_or(0);
    let mut seen = vec![false; nrow * ncol];
    let mut stack = vec![start];
    seen[start] = true;
    while let Some(s) = stack.pop() {
        let (r, c) = (s / ncol, s % ncol);
        if desc[r][c] == b'G' {
            return true;
        }
        let neighbours = [(r + 1, c), (r, c + 1), (r.wrapping_sub(1), c), (r, c.wrapping_sub(1))];
        for (nr, nc) in neighbours {
            if nr < nrow && nc < ncol && desc[nr][nc] != b'H' && !seen[nr * ncol + nc] {
                seen[nr * ncol + nc] = true;
                stack.push(nr * ncol + nc);
            }
        }
    }
    false
}

/// Attempts [`generate_random_map`] makes before giving up.
pub const MAX_MAP_ATTEMPTS: usize = 1_000_000;

/// A random `size` x `size` map with `S` in the top-left corner, `G` in the bottom-right corner,
/// every other tile frozen with probability `p` (else a hole), redrawn until `S` reaches `G`
/// (Gymnasium's `generate_random_map`).
///
/// The tiles are Gymnasium's: `np_random(seed).choice(["F", "H"], (size, size), p=[p, 1 - p])`
/// per attempt (`size²` `random()` draws, a tile frozen when its draw is below the normalised
/// cumulative `p / (p + (1 - p))`), so a seed gives Gymnasium's map. Like Gymnasium, `p > 1` counts
/// as 1. Unlike Gymnasium, which loops forever in these cases, it errors on `size < 2`, on `p <= 0`
/// or NaN, and after [`MAX_MAP_ATTEMPTS`] maps without a path.
pub fn generate_random_map(size: usize, p: f64, seed: u64) -> Result<Vec<String>> {
    if size < 2 {
        return Err(Error::invalid("FrozenLake map size", format!("{size} is too small: the start and goal need 2x2")));
    }
    if p.is_nan() || p <= 0.0 {
        return Err(Error::invalid(
            "FrozenLake frozen probability p",
            format!("{p}: with no frozen tiles no map has a path"),
        ));
    }
    let p = p.min(1.0);
    // NumPy's choice with probabilities: cdf = cumsum([p, 1 - p]) / cdf[-1], then
    // searchsorted(u, side="right"): "F" exactly when u < cdf[0].
    let frozen_below = p / (p + (1.0 - p));
    let mut rng = np_random(Some(seed)).0;
    for _ in 0..MAX_MAP_ATTEMPTS {
        let mut board: Vec<Vec<u8>> = (0..size)
            .map(|_| (0..size).map(|_| if rng.random() < frozen_below { b'F' } else { b'H' }).collect())
            .collect();
        board[0][0] = b'S';
        board[size - 1][size - 1] = b'G';
        let rows: Vec<String> = board.into_iter().map(|r| String::from_utf8(r).expect("ASCII tiles")).collect();
        if has_path(&rows) {
            return Ok(rows);
        }
    }
    Err(Error::invalid(
        "FrozenLake frozen probability p",
        format!("no {size}x{size} map with a path in {MAX_MAP_ATTEMPTS} attempts at p = {p}; raise p"),
    ))
}

impl Env for FrozenLake {
    type Obs = usize;
    type Action = usize;

    fn id(&self) -> &str {
        &self.id
    }

    fn observation_space(&self) -> Space {
        Space::Discrete(Discrete::new(self.table.n_states()))
    }

    fn action_space(&self) -> Space {
        Space::Discrete(Discrete::new(4))
    }

    /// Start on `S`; the info holds `prob = 1` as in Gymnasium.
    fn reset(&mut self, seed: Option<u64>) -> Result<(usize, Info)> {
        if let Some(seed) = seed {
            self.rng = np_random(Some(seed)).0;
        }
        // Gymnasium draws the start with `categorical_sample` from the one-hot distribution of the
        // single `S`: always `S`, but one `random()` of the stream is used.
        let _ = self.rng.random();
        self.state = self.start;
        self.phase = Phase::Running;
        let mut info = Info::new();
        info.insert("prob", InfoValue::Int(1));
        Ok((self.state, info))
    }

    /// Sample one entry of `P[state][action]`; the info holds its probability as `prob`.
    fn step(&mut self, action: &usize) -> Result<Step<usize>> {
        if *action >= 4 {
            return Err(invalid_action(&self.id, *action, 4));
        }
        self.phase.ensure_running(&self.id)?;
        let o = self.table.sample(self.state, *action, &mut self.rng);
        self.state = o.next;
        if o.terminated {
            self.phase = Phase::Ended;
        }
        let mut info = Info::new();
        info.insert("prob", InfoValue::Float(o.prob));
        Ok(Step { obs: o.next, reward: o.reward, terminated: o.terminated, truncated: false, info })
    }
}

impl NpRandom for FrozenLake {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// The state layout is `[s]`. Setting a hole or the goal counts as an ended episode.
impl SetState for FrozenLake {
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        let s = state_from_slice(&self.id, state, self.table.n_states())?;
        self.state = s;
        self.phase = if self.table.is_terminal(s) { Phase::Ended } else { Phase::Running };
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.state as f64]
    }
}

/// Gymnasium's table as an MDP (holes and the goal are already absorbing there).
impl Mdp for FrozenLake {
    fn n_states(&self) -> usize {
        self.table.n_states()
    }
    fn n_actions(&self) -> usize {
        4
    }
    fn transitions(&self, state: usize, action: usize, out: &mut Vec<(usize, f64)>) {
        self.table.transitions(state, action, out)
    }
    fn expected_reward(&self, state: usize, action: usize) -> f64 {
        self.table.expected_reward(state, action)
    }
    fn is_terminal(&self, state: usize) -> bool {
        self.table.is_terminal(state)
    }
}

/// `gymnasium.make("FrozenLake-v1")`: the slippery 4x4 lake with its 100-step limit.
pub fn frozen_lake_v1() -> TimeLimit<FrozenLake> {
    frozen_lake_v1_with(FrozenLakeConfig::default()).expect("the default FrozenLake is valid")
}

/// `gymnasium.make("FrozenLake-v1", **config)`: any lake, with `FrozenLake-v1`'s 100-step limit
/// (whatever the map size, as in Gymnasium).
pub fn frozen_lake_v1_with(config: FrozenLakeConfig) -> Result<TimeLimit<FrozenLake>> {
    Ok(TimeLimit::new(FrozenLake::new(config)?, 100))
}

/// `gymnasium.make("FrozenLake8x8-v1")`: the slippery 8x8 lake with its 200-step limit.
pub fn frozen_lake_8x8_v1() -> TimeLimit<FrozenLake> {
    let config = FrozenLakeConfig { map: LakeMap::EightByEight, ..FrozenLakeConfig::default() };
    let mut env = FrozenLake::new(config).expect("the 8x8 FrozenLake is valid");
    env.id = "FrozenLake8x8-v1".to_string();
    TimeLimit::new(env, 200)
}
