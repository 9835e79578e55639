//! `rlox._rlox.Env`: one environment, driven by `rlox.envs.RloxEnv` (the `gymnasium.Env` subclass).
//!
//! A step converts the action, steps the Rust env and returns `(obs, reward, terminated, truncated,
//! info)` with a fresh observation array (Gymnasium's `check_env` requires that returned data is
//! never reused). Everything runs under the GIL: one step takes well under a microsecond, less than
//! releasing and re-taking the GIL would cost.

use crate::catalog::{Kwargs, Recipe};
use crate::convert;
use crate::core::{ActionIn, Core, ObsOut};
use crate::errors::{guard, ClosedEnvironmentError, IntoPy, InvalidAction, ResetNeeded};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rlox_core::spaces::Space;

/// One rlox environment.
#[pyclass(module = "rlox._rlox", name = "Env")]
pub struct PyEnv {
    core: Box<dyn Core>,
    observation_space: Space,
    action_space: Space,
    obs_f32: Vec<f32>,
    obs_index: i64,
    action_f32: Vec<f32>,
    started: bool,
    closed: bool,
    /// Set when a panic left the env in an unknown state.
    broken: Option<String>,
}

impl PyEnv {
    fn usable(&self) -> PyResult<()> {
        if let Some(why) = &self.broken {
            return Err(PyRuntimeError::new_err(format!(
                "this {} env is unusable after an internal error ({why}); make a new one",
                self.core.id()
            )));
        }
        if self.closed {
            return Err(ClosedEnvironmentError::new_err(format!("{}: the env is closed", self.core.id())));
        }
        Ok(())
    }

    fn obs_object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.observation_space {
            Space::Discrete(_) => self.obs_index.into_pyobject(py)?.into_any(),
            _ => PyArray1::from_slice(py, &self.obs_f32).into_any(),
        })
    }

    /// Run `f` with panics caught; a panic marks the env unusable.
    fn run<T>(&mut self, f: impl FnOnce(&mut Self) -> PyResult<T>) -> PyResult<T> {
        match guard(|| f(self)) {
            Ok(r) => r,
            Err(e) => {
                self.broken = Some(e.to_string());
                Err(e)
            }
        }
    }
}

/// Read one action of `space` from a Python object.
fn read_action<'a>(
    action: &Bound<'_, PyAny>,
    space: &Space,
    id: &str,
    scratch: &'a mut Vec<f32>,
) -> PyResult<ActionIn<'a>> {
    let bad = |why: &str| {
        let repr = action.repr().map(|r| r.to_string()).unwrap_or_default();
        InvalidAction::new_err(format!("invalid action {repr} for {id}: {why}; the action space is {space}"))
    };
    match space {
        Space::Discrete(_) => {
            // Python ints, NumPy integer scalars and 0-d integer arrays (not floats, as Gymnasium's
            // `Discrete.contains`).
            if let Ok(arr) = action.cast::<numpy::PyUntypedArray>() {
                if arr.ndim() != 0 {
                    return Err(bad("expected a scalar"));
                }
            }
            action.extract::<i64>().map(ActionIn::Index).map_err(|_| bad("expected an integer"))
        }
        Space::Box(b) => {
            scratch.clear();
            if let Ok(arr) = action.cast::<PyArray1<f32>>() {
                scratch.extend(arr.readonly().as_array().iter());
            } else if let Ok(values) = action.extract::<Vec<f64>>() {
                scratch.extend(values.iter().map(|&x| x as f32));
            } else {
                return Err(bad(&format!("expected an array of {} numbers", b.dim())));
            }
            if scratch.len() != b.dim() {
                return Err(bad(&format!("expected shape ({},), got {} values", b.dim(), scratch.len())));
            }
            Ok(ActionIn::Vector(scratch))
        }
        Space::MultiDiscrete(_) => Err(bad("MultiDiscrete actions are not supported")),
    }
}

#[pymethods]
impl PyEnv {
    /// Build env `id` with Gymnasium's keyword arguments; `max_episode_steps=None` means no time limit.
    #[new]
    #[pyo3(signature = (id, kwargs=None, max_episode_steps=None))]
    fn new(id: &str, kwargs: Option<&Bound<'_, PyDict>>, max_episode_steps: Option<usize>) -> PyResult<Self> {
        crate::errors::guarded(|| {
            if max_episode_steps == Some(0) {
                return Err(PyValueError::new_err("max_episode_steps must be at least 1"));
            }
            let recipe = Recipe::parse(id, Kwargs::new(id, kwargs)?)?;
            let core = recipe.core(max_episode_steps);
            let observation_space = core.observation_space();
            let action_space = core.action_space();
            Ok(PyEnv {
                obs_f32: vec![0.0; observation_space.flat_dim()],
                obs_index: 0,
                action_f32: Vec::new(),
                observation_space,
                action_space,
                core,
                started: false,
                closed: false,
                broken: None,
            })
        })
    }

    /// The Gymnasium id of the Rust env.
    #[getter]
    fn id(&self) -> String {
        self.core.id().to_string()
    }

    /// The observation space as a description (see `rlox.spaces`).
    #[getter]
    fn observation_space<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        convert::space(py, &self.observation_space)
    }

    /// The action space as a description.
    #[getter]
    fn action_space<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        convert::space(py, &self.action_space)
    }

    /// Start an episode; returns `(obs, info)`.
    #[pyo3(signature = (seed=None))]
    fn reset<'py>(&mut self, py: Python<'py>, seed: Option<u64>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        self.usable()?;
        self.run(|me| {
            let slot = match me.observation_space {
                Space::Discrete(_) => ObsOut::Index(&mut me.obs_index),
                _ => ObsOut::Vector(&mut me.obs_f32),
            };
            let info = me.core.reset(seed, slot).py()?;
            me.started = true;
            Ok((me.obs_object(py)?, convert::info(py, &info)?))
        })
    }

    /// Advance one step; returns `(obs, reward, terminated, truncated, info)`.
    #[allow(clippy::type_complexity)] // Gymnasium's 5-tuple
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, f64, bool, bool, Bound<'py, PyDict>)> {
        self.usable()?;
        if !self.started {
            return Err(ResetNeeded::new_err("Cannot call env.step() before calling env.reset()"));
        }
        self.run(|me| {
            let mut scratch = std::mem::take(&mut me.action_f32);
            let result = (|| {
                let a = read_action(action, &me.action_space, me.core.id(), &mut scratch)?;
                let slot = match me.observation_space {
                    Space::Discrete(_) => ObsOut::Index(&mut me.obs_index),
                    _ => ObsOut::Vector(&mut me.obs_f32),
                };
                me.core.step(a, slot).py()
            })();
            me.action_f32 = scratch;
            let out = result?;
            Ok((me.obs_object(py)?, out.reward, out.terminated, out.truncated, convert::info(py, &out.info)?))
        })
    }

    /// The internal state as `float64` values (layout documented by each env).
    #[getter]
    fn get_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.core.state())
    }

    /// Overwrite the internal state (the env counts as reset afterwards).
    #[setter]
    fn set_state(&mut self, state: Vec<f64>) -> PyResult<()> {
        self.usable()?;
        self.run(|me| {
            me.core.set_state(&state).py()?;
            me.started = true;
            Ok(())
        })
    }

    /// An RGB frame `(height, width, 3)` of the current state (`uint8`), for the envs that render.
    fn render<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.usable()?;
        let id = self.core.id().to_string();
        let state = self.core.state();
        let frame = crate::errors::guarded(|| {
            crate::render::render(&id, &state)
                .ok_or_else(|| PyValueError::new_err(format!("{id} has no rgb_array renderer")))
        })?;
        Ok(PyArray1::from_vec(py, frame.rgb).reshape([frame.height, frame.width, 3])?.into_any())
    }

    /// Close the env (idempotent); later calls raise `ClosedEnvironmentError`.
    fn close(&mut self) {
        self.closed = true;
    }

    /// Whether [`PyEnv::close`] was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed
    }

    fn __repr__(&self) -> String {
        format!("rlox._rlox.Env({:?})", self.core.id())
    }
}
