//! Which envs Python can make, and from which keyword arguments.
//!
//! `rlox.make(id, **kwargs)` takes Gymnasium's keyword arguments with Python types (`is_slippery=True`,
//! `desc=["SFFF", ...]`), not the CLI's `key=value` strings. [`Recipe::parse`] checks them the way
//! Python checks a call: an unknown name is a `TypeError` ("unexpected keyword argument"), a value of
//! the wrong type a `TypeError` naming the expected type, a value out of range a `ValueError` (from
//! the env's own validation). A Gymnasium argument that rlox does not implement is a `ValueError` that
//! says so, rather than being ignored.
//!
//! A [`Recipe`] then builds as many envs as asked: one [`Core`] for `rlox.make`, or a batch for
//! `rlox.make_vec` (see [`crate::batch`]). The time limit is a separate argument so that
//! `gymnasium.make("rlox/...")` can leave it to Gymnasium's `TimeLimit` wrapper.

use crate::core::{Core, Erased};
use crate::errors::IntoPy;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};
use rlox_core::env::{Env, SetState};
use rlox_core::wrappers::TimeLimit;
use rlox_envs::classic_control::{Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum};
use rlox_envs::gridworld::GridWorld;
use rlox_envs::registry::{make_gridworld_from, EnvOptions, SPECS};
use rlox_envs::toy_text::{CliffWalking, FrozenLake, FrozenLakeConfig, LakeMap, Taxi, TaxiConfig};

/// Keyword arguments being consumed, in call order.
pub struct Kwargs<'py> {
    id: String,
    items: Vec<(String, Bound<'py, PyAny>)>,
}

impl<'py> Kwargs<'py> {
    /// The arguments of a call for env `id` (`None`: no arguments).
    pub fn new(id: &str, dict: Option<&Bound<'py, PyDict>>) -> PyResult<Self> {
        let mut items = Vec::new();
        if let Some(d) = dict {
            for (k, v) in d.iter() {
                let k: String = k.extract().map_err(|_| PyTypeError::new_err("keywords must be strings"))?;
                items.push((k, v));
            }
        }
        Ok(Kwargs { id: id.to_string(), items })
    }

    fn take(&mut self, key: &str) -> Option<Bound<'py, PyAny>> {
        let i = self.items.iter().position(|(k, _)| k == key)?;
        Some(self.items.remove(i).1)
    }

    fn wrong_type(&self, key: &str, expected: &str, value: &Bound<'py, PyAny>) -> PyErr {
        let got = value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        let repr = value.repr().map(|r| r.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("{}: argument '{key}' must be {expected}, not {got} ({repr})", self.id))
    }

    /// A `bool` (Python's or NumPy's; not an int).
    pub fn bool(&mut self, key: &str) -> PyResult<Option<bool>> {
        let Some(v) = self.take(key) else { return Ok(None) };
        if v.is_instance_of::<PyBool>() || v.get_type().name().is_ok_and(|n| n == "bool") {
            return v.extract::<bool>().map(Some).map_err(|_| self.wrong_type(key, "a bool", &v));
        }
        Err(self.wrong_type(key, "a bool", &v))
    }

    /// A real number (an int or a float; not a bool).
    pub fn float(&mut self, key: &str) -> PyResult<Option<f64>> {
        let Some(v) = self.take(key) else { return Ok(None) };
        if v.is_instance_of::<PyBool>() || v.is_instance_of::<PyString>() {
            return Err(self.wrong_type(key, "a number", &v));
        }
        v.extract::<f64>().map(Some).map_err(|_| self.wrong_type(key, "a number", &v))
    }

    /// A non-negative whole number.
    pub fn whole(&mut self, key: &str) -> PyResult<Option<usize>> {
        let Some(v) = self.take(key) else { return Ok(None) };
        if v.is_instance_of::<PyBool>() {
            return Err(self.wrong_type(key, "an int", &v));
        }
        v.extract::<usize>().map(Some).map_err(|_| self.wrong_type(key, "a non-negative int", &v))
    }

    /// A string.
    pub fn string(&mut self, key: &str) -> PyResult<Option<String>> {
        let Some(v) = self.take(key) else { return Ok(None) };
        v.extract::<String>().map(Some).map_err(|_| self.wrong_type(key, "a str", &v))
    }

    /// A list (or tuple) of strings; a single string is rejected (it would be read letter by letter).
    pub fn strings(&mut self, key: &str) -> PyResult<Option<Vec<String>>> {
        let Some(v) = self.take(key) else { return Ok(None) };
        if v.is_instance_of::<PyString>() {
            return Err(self.wrong_type(key, "a list of str", &v));
        }
        let mut out = Vec::new();
        for item in v.try_iter().map_err(|_| self.wrong_type(key, "a list of str", &v))? {
            let item = item?;
            // Gymnasium also accepts rows given as lists of one-letter strings or bytes.
            let row: String = match item.extract::<String>() {
                Ok(s) => s,
                Err(_) => match item.extract::<Vec<u8>>() {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err(_) => item
                        .extract::<Vec<String>>()
                        .map(|cells| cells.concat())
                        .map_err(|_| self.wrong_type(key, "a list of str", &v))?,
                },
            };
            out.push(row);
        }
        Ok(Some(out))
    }

    /// Grid-world cells: `(row, col)` or a list of them (1-based), as the registry's text form.
    pub fn cells(&mut self, key: &str) -> PyResult<Option<String>> {
        let Some(v) = self.take(key) else { return Ok(None) };
        if let Ok(s) = v.extract::<String>() {
            return Ok(Some(s));
        }
        if let Ok((r, c)) = v.extract::<(usize, usize)>() {
            return Ok(Some(format!("{r},{c}")));
        }
        if let Ok(list) = v.extract::<Vec<(usize, usize)>>() {
            return Ok(Some(list.iter().map(|(r, c)| format!("{r},{c}")).collect::<Vec<_>>().join(";")));
        }
        Err(self.wrong_type(key, "a (row, col) tuple, a list of them, or a 'r,c;r,c' string", &v))
    }

    /// Reject what is left: a Gymnasium argument rlox lacks is a `ValueError`, anything else a `TypeError`.
    pub fn finish(self, accepted: &[&str], gymnasium_only: &[&str]) -> PyResult<()> {
        let Some((key, _)) = self.items.first() else { return Ok(()) };
        let accepted = if accepted.is_empty() { "none".to_string() } else { accepted.join(", ") };
        if gymnasium_only.contains(&key.as_str()) {
            return Err(PyValueError::new_err(format!(
                "{}: Gymnasium's argument '{key}' is not implemented by rlox (rlox accepts: {accepted})",
                self.id
            )));
        }
        Err(PyTypeError::new_err(format!(
            "{}: got an unexpected keyword argument '{key}' (accepted: {accepted})",
            self.id
        )))
    }
}

/// What to build, with its arguments checked.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // built once per env; boxing would buy nothing
pub enum Recipe {
    /// `CartPole-v1`.
    CartPole,
    /// `Acrobot-v1`.
    Acrobot,
    /// `MountainCar-v0`.
    MountainCar,
    /// `MountainCarContinuous-v0`.
    MountainCarContinuous,
    /// `Pendulum-v1`.
    Pendulum,
    /// `FrozenLake-v1` / `FrozenLake8x8-v1` (a built prototype: the map is validated once).
    FrozenLake(FrozenLake),
    /// `CliffWalking-v1`.
    CliffWalking(CliffWalking),
    /// `Taxi-v4`.
    Taxi(Taxi),
    /// The book's grid world.
    GridWorld(GridWorld),
}

/// Classic-control arguments of Gymnasium 1.4 that rlox does not implement.
const CLASSIC_GYM_ONLY: &[&str] = &["sutton_barto_reward", "goal_velocity", "g"];

impl Recipe {
    /// Check `kwargs` for env `id` (an id of [`SPECS`]).
    pub fn parse(id: &str, mut kw: Kwargs<'_>) -> PyResult<Recipe> {
        let recipe = match id {
            "CartPole-v1" | "Acrobot-v1" | "MountainCar-v0" | "MountainCarContinuous-v0" | "Pendulum-v1" => {
                kw.finish(&[], CLASSIC_GYM_ONLY)?;
                match id {
                    "CartPole-v1" => Recipe::CartPole,
                    "Acrobot-v1" => Recipe::Acrobot,
                    "MountainCar-v0" => Recipe::MountainCar,
                    "MountainCarContinuous-v0" => Recipe::MountainCarContinuous,
                    _ => Recipe::Pendulum,
                }
            }
            "FrozenLake-v1" | "FrozenLake8x8-v1" => {
                let mut cfg = FrozenLakeConfig::default();
                let map_name = if id == "FrozenLake8x8-v1" { Some("8x8".to_string()) } else { kw.string("map_name")? };
                match map_name.as_deref() {
                    None | Some("4x4") => {}
                    Some("8x8") => cfg.map = LakeMap::EightByEight,
                    Some(other) => {
                        return Err(PyValueError::new_err(format!(
                            "{id}: map_name '{other}' is not '4x4' or '8x8' (give a custom map with desc=[...])"
                        )))
                    }
                }
                if let Some(rows) = kw.strings("desc")? {
                    cfg.map = LakeMap::Custom(rows);
                }
                if let Some(v) = kw.bool("is_slippery")? {
                    cfg.is_slippery = v;
                }
                if let Some(v) = kw.float("success_rate")? {
                    cfg.success_rate = v;
                }
                if let Some(v) = kw.take("reward_schedule") {
                    cfg.reward_schedule = v
                        .extract::<(f64, f64, f64)>()
                        .map(|(goal, hole, frozen)| [goal, hole, frozen])
                        .map_err(|_| kw.wrong_type("reward_schedule", "a tuple of three numbers", &v))?;
                }
                let accepted: &[&str] = if id == "FrozenLake8x8-v1" {
                    &["desc", "is_slippery", "success_rate", "reward_schedule"]
                } else {
                    &["map_name", "desc", "is_slippery", "success_rate", "reward_schedule"]
                };
                kw.finish(accepted, &[])?;
                let env = FrozenLake::new(cfg).py()?;
                Recipe::FrozenLake(env)
            }
            "CliffWalking-v1" => {
                let slippery = kw.bool("is_slippery")?.unwrap_or(false);
                kw.finish(&["is_slippery"], &[])?;
                Recipe::CliffWalking(CliffWalking::new(slippery))
            }
            "Taxi-v4" => {
                let mut cfg = TaxiConfig::default();
                if let Some(v) = kw.bool("is_rainy")? {
                    cfg.is_rainy = v;
                }
                if let Some(v) = kw.bool("fickle_passenger")? {
                    cfg.fickle_passenger = v;
                }
                kw.finish(&["is_rainy", "fickle_passenger"], &[])?;
                Recipe::Taxi(Taxi::new(cfg).py()?)
            }
            "gridworld" => {
                let mut opts = EnvOptions::new();
                let mut set = |k: &str, v: Option<String>| -> PyResult<()> {
                    if let Some(v) = v {
                        opts.set(k, v).py()?;
                    }
                    Ok(())
                };
                set("preset", kw.string("preset")?)?;
                set("rows", kw.whole("rows")?.map(|v| v.to_string()))?;
                set("cols", kw.whole("cols")?.map(|v| v.to_string()))?;
                set("forbidden", kw.cells("forbidden")?)?;
                set("target", kw.cells("target")?)?;
                set("start", kw.cells("start")?)?;
                for key in ["r_boundary", "r_forbidden", "r_target", "r_other"] {
                    set(key, kw.float(key)?.map(|v| format!("{v:?}")))?;
                }
                set("actions", kw.string("actions")?)?;
                for key in ["forbidden_as_wall", "additive_border", "terminate_at_target"] {
                    set(key, kw.bool(key)?.map(|v| v.to_string()))?;
                }
                let spec = SPECS.iter().find(|s| s.id == "gridworld").map(|s| s.options).unwrap_or(&[]);
                kw.finish(spec, &[])?;
                Recipe::GridWorld(make_gridworld_from(opts).py()?)
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "rlox has no env '{other}'; known: {}",
                    SPECS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
                )))
            }
        };
        Ok(recipe)
    }

    /// One env, truncated after `limit` steps when given.
    pub fn core(&self, limit: Option<usize>) -> Box<dyn Core> {
        match self {
            Recipe::CartPole => boxed(CartPole::new(), limit),
            Recipe::Acrobot => boxed(Acrobot::new(), limit),
            Recipe::MountainCar => boxed(MountainCar::new(), limit),
            Recipe::MountainCarContinuous => boxed(MountainCarContinuous::new(), limit),
            Recipe::Pendulum => boxed(Pendulum::new(), limit),
            Recipe::FrozenLake(e) => boxed(e.clone(), limit),
            Recipe::CliffWalking(e) => boxed(e.clone(), limit),
            Recipe::Taxi(e) => boxed(e.clone(), limit),
            Recipe::GridWorld(e) => boxed(e.clone(), limit),
        }
    }
}

fn boxed<E>(env: E, limit: Option<usize>) -> Box<dyn Core>
where
    E: Env + SetState + Send + Sync + 'static,
    E::Obs: crate::core::WriteObs,
    E::Action: crate::core::ReadAction,
{
    match limit {
        Some(n) => Box::new(Erased::new(TimeLimit::new(env, n))),
        None => Box::new(Erased::new(env)),
    }
}
