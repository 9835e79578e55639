//! The environment registry: `make("FrozenLake-v1", options)` for every environment rlox has,
//! under Gymnasium's ids where they exist.
//!
//! Options are `key=value` strings (as a command line gives them). Every env consumes the keys it
//! knows; a key left over is an error that names it and lists the accepted ones.

use crate::classic_control::{acrobot_v1, cartpole_v1, mountain_car_continuous_v0, mountain_car_v0, pendulum_v1};
use crate::gridworld::{parse_cells, preset, ActionSet, GridWorld};
use crate::toy_text::cliff_walking::CliffWalking;
use crate::toy_text::frozen_lake::{frozen_lake_v1_with, FrozenLakeConfig, LakeMap};
use crate::toy_text::taxi::{taxi_v4_with, TaxiConfig};
use rlox_core::env::{Env, FlatObs, Info, SetState, Step};
use rlox_core::mdp::Mdp;
use rlox_core::spaces::Space;
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Error, Result};
use std::collections::BTreeMap;

/// A registered environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvSpec {
    /// The id passed to [`make`].
    pub id: &'static str,
    /// One line on what it is.
    pub description: &'static str,
    /// The registered time limit, if any.
    pub max_episode_steps: Option<usize>,
    /// Whether the env exposes an explicit model ([`Mdp`]) for planning.
    pub has_model: bool,
    /// The option keys [`make`] accepts.
    pub options: &'static [&'static str],
}

const GRID_OPTIONS: &[&str] = &[
    "preset",
    "rows",
    "cols",
    "forbidden",
    "target",
    "start",
    "r_boundary",
    "r_forbidden",
    "r_target",
    "r_other",
    "actions",
    "forbidden_as_wall",
    "additive_border",
    "terminate_at_target",
];

/// Every environment rlox has.
pub const SPECS: &[EnvSpec] = &[
    EnvSpec {
        id: "gridworld",
        description: "the grid world of S. Zhao's book (presets book-5x5, book-3x3, book-2x2, book-1x2, book-1x3)",
        max_episode_steps: None,
        has_model: true,
        options: GRID_OPTIONS,
    },
    EnvSpec {
        id: "FrozenLake-v1",
        description: "cross a frozen lake without falling into a hole (4x4 or 8x8, slippery)",
        max_episode_steps: Some(100),
        has_model: true,
        options: &["map_name", "desc", "is_slippery", "success_rate"],
    },
    EnvSpec {
        id: "FrozenLake8x8-v1",
        description: "FrozenLake on the 8x8 map",
        max_episode_steps: Some(200),
        has_model: true,
        options: &["is_slippery", "success_rate"],
    },
    EnvSpec {
        id: "CliffWalking-v1",
        description: "walk along a cliff from start to goal; a fall costs -100 and sends you back",
        max_episode_steps: None,
        has_model: true,
        options: &["is_slippery"],
    },
    EnvSpec {
        id: "Taxi-v4",
        description: "pick up a passenger and drop them at their destination",
        max_episode_steps: Some(200),
        has_model: true,
        options: &["is_rainy", "fickle_passenger"],
    },
    EnvSpec {
        id: "CartPole-v1",
        description: "balance a pole on a cart (discrete push left/right)",
        max_episode_steps: Some(500),
        has_model: false,
        options: &[],
    },
    EnvSpec {
        id: "Acrobot-v1",
        description: "swing a two-link pendulum's tip above a line (discrete torque)",
        max_episode_steps: Some(500),
        has_model: false,
        options: &[],
    },
    EnvSpec {
        id: "MountainCar-v0",
        description: "drive an underpowered car up a hill (discrete push)",
        max_episode_steps: Some(200),
        has_model: false,
        options: &[],
    },
    EnvSpec {
        id: "MountainCarContinuous-v0",
        description: "MountainCar with a continuous force in [-1, 1]",
        max_episode_steps: Some(999),
        has_model: false,
        options: &[],
    },
    EnvSpec {
        id: "Pendulum-v1",
        description: "swing a pendulum up and keep it upright (continuous torque in [-2, 2])",
        max_episode_steps: Some(200),
        has_model: false,
        options: &[],
    },
];

/// The spec of `id`, or an error listing the known ids.
pub fn spec(id: &str) -> Result<&'static EnvSpec> {
    SPECS.iter().find(|s| s.id == id).ok_or_else(|| Error::Unknown {
        kind: "environment",
        name: id.to_string(),
        known: SPECS.iter().map(|s| s.id).collect::<Vec<_>>().join(", "),
    })
}

/// `key=value` options for [`make`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvOptions {
    values: BTreeMap<String, String>,
}

impl EnvOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `key=value` items; errors on an item without `=` or a key given twice.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self> {
        let mut o = EnvOptions::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| Error::invalid("env option", format!("'{item}' is not KEY=VALUE")))?;
            o.set(k.trim(), v.trim())?;
        }
        Ok(o)
    }

    /// Set `key` (error if already set).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> Result<()> {
        if self.values.insert(key.replace('-', "_"), value.into()).is_some() {
            return Err(Error::invalid("env option", format!("'{key}' is given twice")));
        }
        Ok(())
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    fn take_parsed<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<Option<T>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| Error::invalid(key, format!("'{v}' is not {what}"))),
        }
    }

    fn finish(self, spec: &EnvSpec) -> Result<()> {
        if let Some(k) = self.values.keys().next() {
            return Err(Error::invalid(
                "env option",
                format!("{} does not take '{k}'; it accepts: {}", spec.id, spec.options.join(", ")),
            ));
        }
        Ok(())
    }
}

/// A discrete environment that also exposes its model.
pub trait TabularEnv: Env<Obs = usize, Action = usize> + Mdp + SetState {}
impl<T: Env<Obs = usize, Action = usize> + Mdp + SetState> TabularEnv for T {}

/// An action for a [`ControlEnv`]: discrete or continuous.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyAction {
    /// An index into a `Discrete` space.
    Discrete(usize),
    /// A point of a `Box` space.
    Continuous(Vec<f32>),
}

impl std::fmt::Display for AnyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyAction::Discrete(a) => write!(f, "{a}"),
            AnyAction::Continuous(v) => write!(f, "{v:?}"),
        }
    }
}

/// Conversion from [`AnyAction`] to an env's own action type.
pub trait FromAnyAction: Sized {
    /// The env's action, or an error naming both kinds.
    fn from_any(action: &AnyAction, env: &str, space: &Space) -> Result<Self>;
}

fn kind_mismatch(action: &AnyAction, env: &str, space: &Space) -> Error {
    Error::InvalidAction { env: env.to_string(), action: action.to_string(), space: space.to_string() }
}

impl FromAnyAction for usize {
    fn from_any(action: &AnyAction, env: &str, space: &Space) -> Result<Self> {
        match action {
            AnyAction::Discrete(a) => Ok(*a),
            other => Err(kind_mismatch(other, env, space)),
        }
    }
}

impl FromAnyAction for Vec<f32> {
    fn from_any(action: &AnyAction, env: &str, space: &Space) -> Result<Self> {
        match action {
            AnyAction::Continuous(v) => Ok(v.clone()),
            other => Err(kind_mismatch(other, env, space)),
        }
    }
}

/// A classic-control environment with its concrete types erased: observations as `Vec<f32>`,
/// actions as [`AnyAction`], and a settable internal state (for trace replays).
pub trait ControlEnv {
    /// The id.
    fn id(&self) -> &str;
    /// The observation space.
    fn observation_space(&self) -> Space;
    /// The action space.
    fn action_space(&self) -> Space;
    /// Start an episode.
    fn reset(&mut self, seed: Option<u64>) -> Result<(Vec<f32>, Info)>;
    /// Advance one step.
    fn step(&mut self, action: &AnyAction) -> Result<Step<Vec<f32>>>;
    /// Set the internal state (layout documented by each env).
    fn set_state(&mut self, state: &[f64]) -> Result<()>;
    /// The observation of the current internal state.
    fn state(&self) -> Vec<f64>;
}

struct Erased<E>(E);

/// Erase the types of a classic-control env (or a wrapper around one, e.g. a recorder) into a
/// [`ControlEnv`], the form the off-policy trainers take.
pub fn erase<E>(env: E) -> Box<dyn ControlEnv>
where
    E: Env + SetState + 'static,
    E::Obs: FlatObs,
    E::Action: FromAnyAction,
{
    Box::new(Erased(env))
}

fn flat<O: FlatObs>(o: &O) -> Vec<f32> {
    let mut v = vec![0.0; o.flat_len()];
    o.write_flat(&mut v);
    v
}

impl<E> ControlEnv for Erased<E>
where
    E: Env + SetState,
    E::Obs: FlatObs,
    E::Action: FromAnyAction,
{
    fn id(&self) -> &str {
        self.0.id()
    }
    fn observation_space(&self) -> Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> Space {
        self.0.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Vec<f32>, Info)> {
        let (o, info) = self.0.reset(seed)?;
        Ok((flat(&o), info))
    }
    fn step(&mut self, action: &AnyAction) -> Result<Step<Vec<f32>>> {
        let a = E::Action::from_any(action, self.0.id(), &self.0.action_space())?;
        let s = self.0.step(&a)?;
        Ok(Step { obs: flat(&s.obs), reward: s.reward, terminated: s.terminated, truncated: s.truncated, info: s.info })
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.0.set_state(state)
    }
    fn state(&self) -> Vec<f64> {
        self.0.state()
    }
}

/// An environment built by [`make`].
pub enum AnyEnv {
    /// Discrete observations and actions with an explicit model.
    Tabular(Box<dyn TabularEnv>),
    /// Classic control: continuous observations, no model.
    Control(Box<dyn ControlEnv>),
}

impl AnyEnv {
    /// The env's id.
    pub fn id(&self) -> &str {
        match self {
            AnyEnv::Tabular(e) => e.id(),
            AnyEnv::Control(e) => e.id(),
        }
    }

    /// The tabular env inside, or an error saying that `what` needs a model.
    pub fn into_tabular(self, what: &str) -> Result<Box<dyn TabularEnv>> {
        match self {
            AnyEnv::Tabular(e) => Ok(e),
            AnyEnv::Control(e) => Err(Error::invalid(
                "environment",
                format!("{what} needs an environment with a finite model (discrete states); {} has none", e.id()),
            )),
        }
    }
}

/// Build the grid world from options (`preset` first, then overrides).
pub fn make_gridworld(options: &mut EnvOptions) -> Result<GridWorld> {
    let mut cfg = preset(&options.take("preset").unwrap_or_else(|| "book-5x5".into()))?;
    if let Some(r) = options.take_parsed("rows", "a whole number")? {
        cfg.rows = r;
    }
    if let Some(c) = options.take_parsed("cols", "a whole number")? {
        cfg.cols = c;
    }
    if let Some(f) = options.take("forbidden") {
        cfg.forbidden = parse_cells(&f)?;
    }
    if let Some(t) = options.take("target") {
        cfg.target = one_cell(&t, "target")?;
    }
    if let Some(s) = options.take("start") {
        cfg.start = Some(one_cell(&s, "start")?);
    }
    for (key, slot) in [
        ("r_boundary", &mut cfg.r_boundary),
        ("r_forbidden", &mut cfg.r_forbidden),
        ("r_target", &mut cfg.r_target),
        ("r_other", &mut cfg.r_other),
    ] {
        if let Some(v) = options.take_parsed(key, "a number")? {
            *slot = v;
        }
    }
    if let Some(a) = options.take("actions") {
        cfg.actions = match a.as_str() {
            "five" => ActionSet::Five,
            "linear" => ActionSet::Linear,
            _ => return Err(Error::invalid("actions", format!("'{a}' is not 'five' or 'linear'"))),
        };
    }
    for (key, slot) in [
        ("forbidden_as_wall", &mut cfg.forbidden_as_wall),
        ("additive_border", &mut cfg.additive_border_from_forbidden),
        ("terminate_at_target", &mut cfg.terminate_at_target),
    ] {
        if let Some(v) = options.take_parsed(key, "true or false")? {
            *slot = v;
        }
    }
    GridWorld::new(cfg)
}

/// Build the grid world from options, rejecting options it does not know.
pub fn make_gridworld_from(mut options: EnvOptions) -> Result<GridWorld> {
    let g = make_gridworld(&mut options)?;
    options.finish(spec("gridworld")?)?;
    Ok(g)
}

fn one_cell(text: &str, what: &str) -> Result<(usize, usize)> {
    match parse_cells(text)?.as_slice() {
        [cell] => Ok(*cell),
        _ => Err(Error::invalid(what, format!("'{text}' must be exactly one ROW,COL cell"))),
    }
}

/// Build environment `id` with `options`.
pub fn make(id: &str, mut options: EnvOptions) -> Result<AnyEnv> {
    let spec = spec(id)?;
    let env: AnyEnv = match id {
        "gridworld" => AnyEnv::Tabular(Box::new(make_gridworld(&mut options)?)),
        "FrozenLake-v1" | "FrozenLake8x8-v1" => {
            let mut cfg = FrozenLakeConfig::default();
            let map_name = if id == "FrozenLake8x8-v1" { Some("8x8".to_string()) } else { options.take("map_name") };
            match map_name.as_deref() {
                None | Some("4x4") => {}
                Some("8x8") => cfg.map = LakeMap::EightByEight,
                Some(other) => return Err(Error::invalid("map_name", format!("'{other}' is not 4x4 or 8x8"))),
            }
            if let Some(desc) = options.take("desc") {
                cfg.map = LakeMap::Custom(desc.split('/').map(|r| r.trim().to_string()).collect());
            }
            if let Some(v) = options.take_parsed("is_slippery", "true or false")? {
                cfg.is_slippery = v;
            }
            if let Some(v) = options.take_parsed("success_rate", "a number")? {
                cfg.success_rate = v;
            }
            let limit = if id == "FrozenLake8x8-v1" { 200 } else { 100 };
            let env = frozen_lake_v1_with(cfg)?;
            AnyEnv::Tabular(Box::new(TimeLimit::new(env.inner().clone(), limit)))
        }
        "CliffWalking-v1" => {
            let slippery = options.take_parsed("is_slippery", "true or false")?.unwrap_or(false);
            AnyEnv::Tabular(Box::new(CliffWalking::new(slippery)))
        }
        "Taxi-v4" => {
            let mut cfg = TaxiConfig::default();
            if let Some(v) = options.take_parsed("is_rainy", "true or false")? {
                cfg.is_rainy = v;
            }
            if let Some(v) = options.take_parsed("fickle_passenger", "true or false")? {
                cfg.fickle_passenger = v;
            }
            AnyEnv::Tabular(Box::new(taxi_v4_with(cfg)?))
        }
        "CartPole-v1" => AnyEnv::Control(Box::new(Erased(cartpole_v1()))),
        "Acrobot-v1" => AnyEnv::Control(Box::new(Erased(acrobot_v1()))),
        "MountainCar-v0" => AnyEnv::Control(Box::new(Erased(mountain_car_v0()))),
        "MountainCarContinuous-v0" => AnyEnv::Control(Box::new(Erased(mountain_car_continuous_v0()))),
        "Pendulum-v1" => AnyEnv::Control(Box::new(Erased(pendulum_v1()))),
        _ => unreachable!("every spec has a constructor"),
    };
    options.finish(spec)?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_builds() {
        for s in SPECS {
            let env = make(s.id, EnvOptions::new()).unwrap();
            assert_eq!(env.id(), if s.id == "FrozenLake8x8-v1" { "FrozenLake-v1" } else { s.id });
        }
    }

    #[test]
    fn unknown_ids_and_options_are_errors() {
        let e = make("CartPole-v9", EnvOptions::new()).err().unwrap().to_string();
        assert!(e.contains("CartPole-v9") && e.contains("gridworld"), "{e}");
        let e = make("Taxi-v4", EnvOptions::parse(&["rainy=true"]).unwrap()).err().unwrap().to_string();
        assert!(e.contains("'rainy'") && e.contains("is_rainy"), "{e}");
        assert!(EnvOptions::parse(&["novalue"]).is_err());
        let e = make("gridworld", EnvOptions::parse(&["r_target=abc"]).unwrap()).err().unwrap().to_string();
        assert!(e.contains("r_target") && e.contains("abc"), "{e}");
    }

    #[test]
    fn gridworld_options_override_the_preset() {
        let opts = EnvOptions::parse(&["preset=book-3x3", "r_forbidden=-10", "start=1,1"]).unwrap();
        let env = make("gridworld", opts).unwrap().into_tabular("test").unwrap();
        assert_eq!(env.n_states(), 9);
        assert!(make("CartPole-v1", EnvOptions::new()).unwrap().into_tabular("planning").is_err());
    }
}
