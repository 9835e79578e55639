//! Taxi-v4 (Gymnasium 1.4): Dietterich's taxi. Drive through a 5x5 grid with walls, pick the
//! passenger up at one of four stands (R, G, Y, B) and drop them off at their destination.
//!
//! ```text
//! +---------+
//! |R: | : :G|
//! | : | : : |
//! | : : : : |
//! | | : | : |
//! |Y| : |B: |
//! +---------+
//! ```
//!
//! * States: `((taxi_row * 5 + taxi_col) * 5 + passenger) * 4 + destination` (500), where
//!   `passenger` is a stand 0..4 (R, G, Y, B) or 4 for "in the taxi" and `destination` a stand.
//! * Actions: 0 south, 1 north, 2 east, 3 west, 4 pick up, 5 drop off. A `|` between two cells
//!   blocks east/west moves; north/south moves are only blocked by the border.
//! * Rewards: -1 per step, +20 for dropping the passenger at the destination (which terminates),
//!   -10 for picking up where the passenger is not, or dropping off with no passenger or away from
//!   every stand. Dropping the passenger at another stand is legal (-1): they wait there.
//! * Start: uniform over the 300 states with the passenger at a stand other than the destination.
//! * `info["action_mask"]` (Gymnasium: an int8 array) marks the actions that change the state; rlox
//!   stores it as [`InfoValue::Floats`] of 0.0/1.0 and also offers [`Taxi::action_mask`].
//! * Registered time limit: 200 steps.
//! * v4's options, all off by default and all implemented: `is_rainy` (a move succeeds with
//!   `rainy_probability = 0.8` and drifts to each side with `(1 - 0.8) / 2`, side moves stopped by
//!   walls; a move blocked ahead does not drift), and `fickle_passenger` (with probability
//!   `fickle_probability = 0.3`, drawn at reset, the passenger picks a new destination on the first
//!   move of the taxi after they got in).
//! * Gymnasium's table gives the "delivered" states (passenger at the destination) ordinary rows.
//!   The [`Mdp`] view makes them absorbing with reward 0 (see the [parent module](super)). The
//!   fickle passenger depends on a hidden flag and is not part of the table, so the `Mdp` view (like
//!   Gymnasium's `P`) describes the env without it.

use super::{invalid_action, state_from_slice, GymP, Outcome, Phase, TransitionTable};
use rlox_core::env::{NpRandom, SetState};
use rlox_core::seeding::{categorical_sample_cumulative, np_random, Generator};
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Discrete, Env, Error, Info, InfoValue, Mdp, Result, Space, Step};

/// Action 0: move south (down).
pub const SOUTH: usize = 0;
/// Action 1: move north (up).
pub const NORTH: usize = 1;
/// Action 2: move east (right).
pub const EAST: usize = 2;
/// Action 3: move west (left).
pub const WEST: usize = 3;
/// Action 4: pick the passenger up.
pub const PICKUP: usize = 4;
/// Action 5: drop the passenger off.
pub const DROPOFF: usize = 5;

/// Number of states.
pub const N_STATES: usize = 500;
/// Number of actions.
pub const N_ACTIONS: usize = 6;
/// The passenger index meaning "in the taxi".
pub const IN_TAXI: usize = 4;

/// The map as Gymnasium draws it. Cell (row, col) sits at `MAP[1 + row][1 + 2 * col]`; the character
/// to its east is `MAP[1 + row][2 + 2 * col]` and to its west `MAP[1 + row][2 * col]`, `:` meaning
/// passable.
pub const MAP: [&str; 7] =
    ["+---------+", "|R: | : :G|", "| : | : : |", "| : : : : |", "| | : | : |", "|Y| : |B: |", "+---------+"];

/// The stands R, G, Y, B as (row, col).
pub const LOCS: [(usize, usize); 4] = [(0, 0), (0, 4), (4, 0), (4, 3)];

const MAX_ROW: usize = 4;
const MAX_COL: usize = 4;

/// The state index of a taxi position, passenger index and destination.
pub fn encode(taxi_row: usize, taxi_col: usize, passenger: usize, destination: usize) -> usize {
    ((taxi_row * 5 + taxi_col) * 5 + passenger) * 4 + destination
}

/// `(taxi_row, taxi_col, passenger, destination)` of a state index below 500.
pub fn decode(state: usize) -> (usize, usize, usize, usize) {
    (state / 100, state / 20 % 5, state / 4 % 5, state % 4)
}

/// The map character at `(1 + row, column)`.
fn map_at(row: usize, column: usize) -> u8 {
    MAP[1 + row].as_bytes()[column]
}

/// Whether no wall stands east of (row, col).
fn open_east(row: usize, col: usize) -> bool {
    map_at(row, 2 * col + 2) == b':'
}

/// Whether no wall stands west of (row, col).
fn open_west(row: usize, col: usize) -> bool {
    map_at(row, 2 * col) == b':'
}

/// The stand index of a position, if it is a stand.
fn stand_at(pos: (usize, usize)) -> Option<usize> {
    LOCS.iter().position(|&l| l == pos)
}

/// The arguments of `gymnasium.make("Taxi-v4", ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaxiConfig {
    /// Moves can drift sideways; default `false`.
    pub is_rainy: bool,
    /// Probability that a possible move goes where intended when rainy; default 0.8.
    pub rainy_probability: f64,
    /// The passenger may change destination once; default `false`.
    pub fickle_passenger: bool,
    /// Probability (drawn at reset) that the passenger is fickle this episode; default 0.3.
    pub fickle_probability: f64,
}

impl Default for TaxiConfig {
    fn default() -> Self {
        TaxiConfig { is_rainy: false, rainy_probability: 0.8, fickle_passenger: false, fickle_probability: 0.3 }
    }
}

/// The Taxi environment; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Taxi {
    config: TaxiConfig,
    table: TransitionTable,
    /// `np.cumsum(initial_state_distrib)`: Gymnasium's start distribution (1/300 on each of the 300
    /// states with the passenger at a stand other than the destination), summed left to right.
    initial_cumulative: Vec<f64>,
    state: usize,
    /// This episode's passenger is fickle and has not changed their mind yet.
    fickle_pending: bool,
    rng: Generator,
    phase: Phase,
}

impl Taxi {
    /// Build Taxi-v4 with `config`; errors on a probability outside `[0, 1]`.
    pub fn new(config: TaxiConfig) -> Result<Self> {
        for (name, p) in
            [("rainy_probability", config.rainy_probability), ("fickle_probability", config.fickle_probability)]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(format!("Taxi {name}"), format!("{p} is not a probability in [0, 1]")));
            }
        }
        let table = build_table(&config);
        // Gymnasium: ones on the start states, divided by their sum, then (per reset) np.cumsum.
        let starts: Vec<f64> = (0..N_STATES)
            .map(|s| {
                let (_, _, passenger, destination) = decode(s);
                if passenger < IN_TAXI && passenger != destination {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = starts.iter().sum();
        let initial_cumulative = starts
            .iter()
            .scan(0.0, |c, p| {
                *c += p / total;
                Some(*c)
            })
            .collect();
        Ok(Taxi {
            config,
            table,
            initial_cumulative,
            state: 0,
            fickle_pending: false,
            rng: np_random(None).0,
            phase: Phase::NotStarted,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TaxiConfig {
        &self.config
    }

    /// Gymnasium's transition table.
    pub fn table(&self) -> &TransitionTable {
        &self.table
    }

    /// Gymnasium's `env.unwrapped.P` as plain data.
    pub fn gym_p(&self) -> GymP {
        self.table.to_gym_p()
    }

    /// Gymnasium's `action_mask(state)`: which actions can change `state` (a move not blocked by a
    /// wall or the border, a pickup at the passenger's stand, a drop-off at any stand with the
    /// passenger aboard).
    pub fn action_mask(state: usize) -> [bool; N_ACTIONS] {
        let (row, col, passenger, destination) = decode(state);
        [
            row < MAX_ROW,
            row > 0,
            col < MAX_COL && open_east(row, col),
            col > 0 && open_west(row, col),
            passenger < IN_TAXI && (row, col) == LOCS[passenger],
            passenger == IN_TAXI && ((row, col) == LOCS[destination] || stand_at((row, col)).is_some()),
        ]
    }

    /// The info Gymnasium returns with `state`: its `prob` and `action_mask`.
    fn info(state: usize, prob: f64) -> Info {
        let mut info = Info::new();
        info.insert("prob", InfoValue::Float(prob));
        let mask = Self::action_mask(state).iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
        info.insert("action_mask", InfoValue::Floats(mask));
        info
    }
}

/// Pick up: allowed only at the passenger's stand (the reward stays the step's -1), else -10.
fn pickup(taxi: (usize, usize), passenger: usize) -> (usize, f64) {
    if passenger < IN_TAXI && taxi == LOCS[passenger] {
        (IN_TAXI, -1.0)
    } else {
        (passenger, -10.0)
    }
}

/// Drop off: at the destination +20 and the episode ends; at another stand the passenger gets out
/// there (-1); anything else -10. Returns (passenger, reward, terminated).
fn dropoff(taxi: (usize, usize), passenger: usize, destination: usize) -> (usize, f64, bool) {
    if passenger != IN_TAXI {
        return (passenger, -10.0, false);
    }
    if taxi == LOCS[destination] {
        return (destination, 20.0, true);
    }
    match stand_at(taxi) {
        Some(stand) => (stand, -1.0, false),
        None => (passenger, -10.0, false),
    }
}

/// Gymnasium's table, dry or rainy.
fn build_table(config: &TaxiConfig) -> TransitionTable {
    TransitionTable::build(
        N_STATES,
        N_ACTIONS,
        |s, a, out| {
            if config.is_rainy {
                rainy_row(s, a, config.rainy_probability, out)
            } else {
                out.push(dry_outcome(s, a))
            }
        },
        |s| {
            let (_, _, passenger, destination) = decode(s);
            passenger == destination
        },
    )
}

/// The single, certain outcome of `(s, a)` in dry weather.
fn dry_outcome(s: usize, a: usize) -> Outcome {
    let (row, col, passenger, destination) = decode(s);
    let (mut r, mut c, mut p) = (row, col, passenger);
    let (mut reward, mut terminated) = (-1.0, false);
    match a {
        SOUTH => r = (row + 1).min(MAX_ROW),
        NORTH => r = row.saturating_sub(1),
        EAST if open_east(row, col) => c = (col + 1).min(MAX_COL),
        WEST if open_west(row, col) => c = col.saturating_sub(1),
        PICKUP => (p, reward) = pickup((row, col), passenger),
        DROPOFF => (p, reward, terminated) = dropoff((row, col), passenger, destination),
        _ => {} // east or west into a wall
    }
    Outcome { prob: 1.0, next: encode(r, c, p, destination), reward, terminated }
}

/// The outcomes of `(s, a)` in the rain. Pick-up and drop-off stay certain. A move lists three
/// entries, always, in the order intended, left, right (relative to the heading), with rewards -1;
/// when the intended move is blocked by a wall or the border, all three stay in place.
fn rainy_row(s: usize, a: usize, rainy_probability: f64, out: &mut Vec<Outcome>) {
    let (row, col, passenger, destination) = decode(s);
    if a == PICKUP || a == DROPOFF {
        let (p, reward, terminated) = if a == PICKUP {
            let (p, reward) = pickup((row, col), passenger);
            (p, reward, false)
        } else {
            dropoff((row, col), passenger, destination)
        };
        out.push(Outcome { prob: 1.0, next: encode(row, col, p, destination), reward, terminated });
        return;
    }
    // (forward, left, right) displacements for each heading.
    let (forward, left, right): ((isize, isize), (isize, isize), (isize, isize)) = match a {
        SOUTH => ((1, 0), (0, 1), (0, -1)),
        NORTH => ((-1, 0), (0, -1), (0, 1)),
        EAST => ((0, 1), (-1, 0), (1, 0)),
        _ => ((0, -1), (1, 0), (-1, 0)),
    };
    let possible = match a {
        SOUTH => row < MAX_ROW,
        NORTH => row > 0,
        EAST => open_east(row, col),
        _ => open_west(row, col),
    };
    let here = (row, col);
    let (ahead, to_left, to_right) =
        if possible { (shifted(here, forward), drift(here, left), drift(here, right)) } else { (here, here, here) };
    let lateral = (1.0 - rainy_probability) / 2.0;
    for (prob, (r, c)) in [(rainy_probability, ahead), (lateral, to_left), (lateral, to_right)] {
        out.push(Outcome { prob, next: encode(r, c, passenger, destination), reward: -1.0, terminated: false });
    }
}

/// `pos + delta`, clamped to the grid.
fn shifted(pos: (usize, usize), delta: (isize, isize)) -> (usize, usize) {
    let r = (pos.0 as isize + delta.0).clamp(0, MAX_ROW as isize) as usize;
    let c = (pos.1 as isize + delta.1).clamp(0, MAX_COL as isize) as usize;
    (r, c)
}

/// A sideways drift: clamped to the grid, and cancelled by a wall between the two cells. Gymnasium
/// checks the wall character next to the *clamped* target cell, which at the border is the one
/// between the last two columns; either way the taxi then stays where it is.
fn drift(pos: (usize, usize), delta: (isize, isize)) -> (usize, usize) {
    let (r, c) = shifted(pos, delta);
    let blocked = match delta.1 {
        1 => map_at(r, 2 * c) != b':',
        -1 => map_at(r, 2 * c + 2) != b':',
        _ => false,
    };
    if blocked {
        pos
    } else {
        (r, c)
    }
}

impl Env for Taxi {
    type Obs = usize;
    type Action = usize;

    fn id(&self) -> &str {
        "Taxi-v4"
    }

    fn observation_space(&self) -> Space {
        Space::Discrete(Discrete::new(N_STATES))
    }

    fn action_space(&self) -> Space {
        Space::Discrete(Discrete::new(N_ACTIONS))
    }

    /// A uniform start state (and, with `fickle_passenger`, whether the passenger is fickle); the
    /// info holds `prob = 1.0` and the `action_mask`.
    fn reset(&mut self, seed: Option<u64>) -> Result<(usize, Info)> {
        if let Some(seed) = seed {
            self.rng = np_random(Some(seed)).0;
        }
        self.state = categorical_sample_cumulative(&self.initial_cumulative, &mut self.rng);
        // Gymnasium draws the fickleness only when the option is on.
        self.fickle_pending = self.config.fickle_passenger && self.rng.random() < self.config.fickle_probability;
        self.phase = Phase::Running;
        Ok((self.state, Self::info(self.state, 1.0)))
    }

    /// Sample one entry of `P[state][action]`; then, for a fickle passenger who was already aboard
    /// when the taxi moved, pick a new destination among the other three stands (once per episode).
    fn step(&mut self, action: &usize) -> Result<Step<usize>> {
        if *action >= N_ACTIONS {
            return Err(invalid_action("Taxi-v4", *action, N_ACTIONS));
        }
        self.phase.ensure_running("Taxi-v4")?;
        let o = self.table.sample(self.state, *action, &mut self.rng);
        let (old_row, old_col, old_passenger, old_destination) = decode(self.state);
        let (row, col, passenger, _) = decode(o.next);
        let mut next = o.next;
        if self.fickle_pending && old_passenger == IN_TAXI && (row, col) != (old_row, old_col) {
            self.fickle_pending = false;
            // Gymnasium: `np_random.choice([d for d in range(4) if d != old_destination])`.
            let pick = self.rng.choice_index(LOCS.len() - 1);
            let destination = (0..LOCS.len()).filter(|&d| d != old_destination).nth(pick).unwrap_or(old_destination);
            next = encode(row, col, passenger, destination);
        }
        self.state = next;
        if o.terminated {
            self.phase = Phase::Ended;
        }
        Ok(Step {
            obs: next,
            reward: o.reward,
            terminated: o.terminated,
            truncated: false,
            info: Self::info(next, o.prob),
        })
    }
}

impl NpRandom for Taxi {
    fn np_random(&self) -> &Generator {
        &self.rng
    }
    fn np_random_mut(&mut self) -> &mut Generator {
        &mut self.rng
    }
}

/// The state layout is `[s]` (the fickle flag is not part of it and is left unchanged). Setting a
/// state with the passenger at their destination counts as an ended episode.
impl SetState for Taxi {
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        let s = state_from_slice("Taxi-v4", state, N_STATES)?;
        self.state = s;
        self.phase = if self.table.is_terminal(s) { Phase::Ended } else { Phase::Running };
        Ok(())
    }

    fn state(&self) -> Vec<f64> {
        vec![self.state as f64]
    }
}

/// Gymnasium's table as an MDP, with the delivered states made absorbing.
impl Mdp for Taxi {
    fn n_states(&self) -> usize {
        N_STATES
    }
    fn n_actions(&self) -> usize {
        N_ACTIONS
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

/// `gymnasium.make("Taxi-v4")` with its 200-step limit.
pub fn taxi_v4() -> TimeLimit<Taxi> {
    taxi_v4_with(TaxiConfig::default()).expect("the default Taxi is valid")
}

/// `gymnasium.make("Taxi-v4", **config)` with its 200-step limit.
pub fn taxi_v4_with(config: TaxiConfig) -> Result<TimeLimit<Taxi>> {
    Ok(TimeLimit::new(Taxi::new(config)?, 200))
}
