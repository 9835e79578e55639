//! `rlox._rlox.VecEnv`: a batch of envs stepped by one call, driven by `rlox.vector.RloxVectorEnv`
//! (the `gymnasium.vector.VectorEnv` subclass) and by the SB3 adapter.
//!
//! One `step` call: read the action array (any integer dtype for discrete spaces, `float32` or
//! `float64` for boxes) into a reused buffer, step the Rust batch, and return
//! `(obs, rewards, terminated, truncated, infos)`.
//!
//! * `copy=True` (Gymnasium's default): fresh arrays, each filled by one `memcpy` from the batch.
//! * `copy=False`: the same four preallocated arrays every call, overwritten in place (no
//!   allocation at all); the caller must copy what it keeps.
//!
//! The GIL is released around the Rust step only for large batches ([`DETACH_MIN_ENVS`]): for a
//! few hundred classic-control envs the step takes a few microseconds, and handing the GIL over
//! and back would cost a noticeable fraction of that for no gain in a single-threaded program.

use crate::batch::{Actions, Autoreset, Batch, Native, ObsMut, Out, RewardsMut, Seeds, SyncBatch};
use crate::catalog::{Kwargs, Recipe};
use crate::convert;
use crate::errors::{guard, ClosedEnvironmentError, IntoPy, InvalidAction, ResetNeeded};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use rlox_core::spaces::Space;
use rlox_envs::classic_control::{
    AcrobotVec, BatchSeeding, CartPoleVec, MountainCarContinuousVec, MountainCarVec, PendulumVec,
};

/// Batches at least this large step with the GIL released (other Python threads run meanwhile).
pub const DETACH_MIN_ENVS: usize = 1024;

/// How actions arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Index,
    Vector(usize),
}

/// The output arrays of one call (fresh, or the reused ones).
struct Arrays<'py> {
    obs: Bound<'py, PyAny>,
    rewards: Bound<'py, PyAny>,
    terminated: Bound<'py, PyArray1<bool>>,
    truncated: Bound<'py, PyArray1<bool>>,
}

/// The preallocated observation, reward, terminated and truncated arrays of `copy=False`.
type OutputArrays = (Py<PyAny>, Py<PyAny>, Py<PyArray1<bool>>, Py<PyArray1<bool>>);

/// A batch of rlox envs.
#[pyclass(module = "rlox._rlox", name = "VecEnv")]
pub struct PyVecEnv {
    batch: Box<dyn Batch>,
    n: usize,
    obs_dim: usize,
    discrete_obs: bool,
    action_kind: ActionKind,
    action_space: Space,
    act_index: Vec<i64>,
    act_vector: Vec<f32>,
    copy: bool,
    /// `copy=False`: the arrays every call returns.
    buffers: Option<OutputArrays>,
    /// `SAME_STEP`: the last observations of the episodes that ended at the last call.
    final_f32: Vec<f32>,
    final_i64: Vec<i64>,
    started: bool,
    closed: bool,
    broken: Option<String>,
}

/// The hand-vectorised batch of `recipe`, if it has one: `vectorization` is `"auto"` (Gymnasium's
/// `make_vec` seeding: CartPole's one shared generator with `float32` rewards, as `CartPoleVectorEnv`)
/// or `"per_env"` (env `i` seeded `seed + i`, `float64` rewards, as `SyncVectorEnv`).
fn native(
    recipe: &Recipe,
    n: usize,
    limit: Option<usize>,
    mode: Autoreset,
    vectorization: &str,
) -> Option<rlox_core::Result<Box<dyn Batch>>> {
    let limit = limit.unwrap_or(u32::MAX as usize);
    let shared = vectorization == "auto";
    fn boxed<B>(b: rlox_core::Result<B>, mode: Autoreset, f32_rewards: bool) -> rlox_core::Result<Box<dyn Batch>>
    where
        B: rlox_envs::classic_control::BatchEnv + rlox_core::vec_env::VecEnv + Send + Sync + 'static,
        <B as rlox_envs::classic_control::BatchEnv>::Action: crate::batch::NativeAction,
    {
        b.map(|b| Box::new(Native::new(b, mode, f32_rewards)) as Box<dyn Batch>)
    }
    Some(match recipe {
        Recipe::CartPole => {
            let seeding = if shared { BatchSeeding::Shared } else { BatchSeeding::PerEnv };
            boxed(CartPoleVec::with_seeding(n, limit, seeding), mode, shared)
        }
        Recipe::Acrobot => boxed(AcrobotVec::with_time_limit(n, limit), mode, false),
        Recipe::MountainCar => boxed(MountainCarVec::with_time_limit(n, limit), mode, false),
        Recipe::MountainCarContinuous => boxed(MountainCarContinuousVec::with_time_limit(n, limit), mode, false),
        Recipe::Pendulum => boxed(PendulumVec::with_time_limit(n, limit), mode, false),
        _ => return None,
    })
}

fn array_shape(a: &Bound<'_, PyAny>) -> String {
    match a.cast::<PyUntypedArray>() {
        Ok(arr) => {
            let dtype = arr.dtype().str().map(|s| s.to_string()).unwrap_or_default();
            format!("an array of shape {:?} and dtype {dtype}", arr.shape())
        }
        Err(_) => format!("a {}", a.get_type().name().map(|n| n.to_string()).unwrap_or_default()),
    }
}

/// Copy a NumPy array of element type `$arr` into `$dst`, converting each element.
macro_rules! try_copy {
    ($actions:expr, $dst:expr, $arr:ty, $conv:expr) => {
        if let Ok(a) = $actions.cast::<$arr>() {
            $dst.clear();
            // SAFETY: read under the GIL and copied at once; rlox holds no other borrow of it.
            match unsafe { a.as_slice() } {
                Ok(s) => $dst.extend(s.iter().map($conv)),
                Err(_) => $dst.extend(a.readonly().as_array().iter().map($conv)),
            }
            true
        } else {
            false
        }
    };
}

fn slice_err(e: numpy::AsSliceError) -> PyErr {
    PyRuntimeError::new_err(format!("rlox output array: {e}"))
}

impl PyVecEnv {
    fn usable(&self) -> PyResult<()> {
        if let Some(why) = &self.broken {
            return Err(PyRuntimeError::new_err(format!(
                "this {} vector env is unusable after an internal error ({why}); make a new one",
                self.batch.id()
            )));
        }
        if self.closed {
            return Err(ClosedEnvironmentError::new_err(format!("{}: the vector env is closed", self.batch.id())));
        }
        Ok(())
    }

    fn bad_actions(&self, actions: &Bound<'_, PyAny>, why: &str) -> PyErr {
        let expected = match self.action_kind {
            ActionKind::Index => format!("an integer array of shape ({},)", self.n),
            ActionKind::Vector(d) => format!("a float array of shape ({}, {d})", self.n),
        };
        InvalidAction::new_err(format!(
            "{}: actions must be {expected} (one action of {} per env), got {}{why}",
            self.batch.id(),
            self.action_space,
            array_shape(actions)
        ))
    }

    /// Read `actions` into the reused buffers.
    fn read_actions(&mut self, actions: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = self.n;
        match self.action_kind {
            ActionKind::Index => {
                let dst = &mut self.act_index;
                let ok = if actions.cast::<PyUntypedArray>().is_ok_and(|a| a.ndim() == 1) {
                    try_copy!(actions, dst, PyArray1<i64>, |&x| x)
                        || try_copy!(actions, dst, PyArray1<i32>, |&x| x as i64)
                        || try_copy!(actions, dst, PyArray1<u8>, |&x| x as i64)
                        || try_copy!(actions, dst, PyArray1<i8>, |&x| x as i64)
                        || try_copy!(actions, dst, PyArray1<i16>, |&x| x as i64)
                        || try_copy!(actions, dst, PyArray1<u16>, |&x| x as i64)
                        || try_copy!(actions, dst, PyArray1<u32>, |&x| x as i64)
                        || try_copy!(actions, dst, PyArray1<u64>, |&x| i64::try_from(x).unwrap_or(-1))
                } else if actions.cast::<PyUntypedArray>().is_ok() {
                    false
                } else if let Ok(list) = actions.extract::<Vec<i64>>() {
                    *dst = list;
                    true
                } else {
                    false
                };
                if !ok {
                    return Err(self.bad_actions(actions, ""));
                }
                if self.act_index.len() != n {
                    return Err(self.bad_actions(actions, &format!(" ({} actions for {n} envs)", self.act_index.len())));
                }
                // The range is checked by the batch itself (before any env moves), once.
            }
            ActionKind::Vector(d) => {
                let dst = &mut self.act_vector;
                let shape_ok = actions.cast::<PyUntypedArray>().is_ok_and(|a| a.shape() == [n, d]);
                let ok = if shape_ok {
                    try_copy!(actions, dst, PyArray2<f32>, |&x| x)
                        || try_copy!(actions, dst, PyArray2<f64>, |&x| x as f32)
                } else if actions.cast::<PyUntypedArray>().is_ok() {
                    false
                } else if let Ok(rows) = actions.extract::<Vec<Vec<f64>>>() {
                    if rows.len() == n && rows.iter().all(|r| r.len() == d) {
                        dst.clear();
                        dst.extend(rows.iter().flatten().map(|&x| x as f32));
                        true
                    } else {
                        false
                    }
                } else {
                    false
                };
                if !ok {
                    return Err(self.bad_actions(actions, ""));
                }
                if let Some(i) = self.act_vector.iter().position(|x| !x.is_finite()) {
                    let row = &self.act_vector[(i / d) * d..(i / d + 1) * d];
                    return Err(InvalidAction::new_err(format!(
                        "invalid action {row:?} for {} (env {}): not finite; the action space is {}",
                        self.batch.id(),
                        i / d,
                        self.action_space
                    )));
                }
            }
        }
        Ok(())
    }

    /// The arrays this call writes: new ones (`copy=True`) or the reused ones.
    fn arrays<'py>(&self, py: Python<'py>) -> PyResult<Arrays<'py>> {
        if let Some((obs, rewards, terminated, truncated)) = &self.buffers {
            return Ok(Arrays {
                obs: obs.bind(py).clone(),
                rewards: rewards.bind(py).clone(),
                terminated: terminated.bind(py).clone(),
                truncated: truncated.bind(py).clone(),
            });
        }
        let n = self.n;
        // SAFETY (all four): new, contiguous arrays that the batch overwrites entirely before any Python
        // code sees them (a failed call drops them unseen).
        unsafe {
            Ok(Arrays {
                obs: if self.discrete_obs {
                    PyArray1::<i64>::new(py, n, false).into_any()
                } else {
                    PyArray2::<f32>::new(py, [n, self.obs_dim], false).into_any()
                },
                rewards: if self.batch.f32_rewards() {
                    PyArray1::<f32>::new(py, n, false).into_any()
                } else {
                    PyArray1::<f64>::new(py, n, false).into_any()
                },
                terminated: PyArray1::<bool>::new(py, n, false),
                truncated: PyArray1::<bool>::new(py, n, false),
            })
        }
    }

    /// The infos of the last call as a dict in Gymnasium's vector layout.
    fn infos<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(infos) = self.batch.infos() {
            convert::vec_infos(py, infos, &d)?;
        }
        if let Some((ended, final_infos)) = self.batch.finals() {
            if ended.contains(&true) {
                let (n, dim) = (self.n, self.obs_dim);
                let mut objs: Vec<Py<PyAny>> = Vec::with_capacity(n);
                for (i, &e) in ended.iter().enumerate() {
                    objs.push(if !e {
                        py.None()
                    } else if self.discrete_obs {
                        self.final_i64[i].into_pyobject(py)?.into_any().unbind()
                    } else {
                        PyArray1::from_slice(py, &self.final_f32[i * dim..(i + 1) * dim]).into_any().unbind()
                    });
                }
                d.set_item("final_obs", PyArray1::from_vec(py, objs))?;
                d.set_item("_final_obs", PyArray1::from_slice(py, ended))?;
                let fi = PyDict::new(py);
                convert::vec_infos(py, final_infos, &fi)?;
                d.set_item("final_info", fi)?;
                d.set_item("_final_info", PyArray1::from_slice(py, ended))?;
            }
        }
        Ok(d)
    }

    fn run<T>(&mut self, f: impl FnOnce(&mut Self) -> PyResult<T>) -> PyResult<T> {
        match guard(|| f(self)) {
            Ok(r) => r,
            Err(e) => {
                self.broken = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Step the batch into `arrays` (the GIL released for large batches).
    fn step_into(&mut self, py: Python<'_>, arrays: &Arrays<'_>) -> PyResult<()> {
        let acts = match self.action_kind {
            ActionKind::Index => Actions::Index(&self.act_index),
            ActionKind::Vector(dim) => Actions::Vector { data: &self.act_vector, dim },
        };
        // SAFETY: the arrays are this object's own (or new), contiguous and of these dtypes; nothing else
        // borrows them during the call (Python code cannot run: the GIL is held, or released only around
        // this Rust loop, in which case other threads could write the reused arrays concurrently, exactly
        // as with any NumPy function that releases the GIL).
        let out = unsafe {
            Out {
                obs: if self.discrete_obs {
                    ObsMut::Index(arrays.obs.cast::<PyArray1<i64>>()?.as_slice_mut().map_err(slice_err)?)
                } else {
                    ObsMut::Vector(arrays.obs.cast::<PyArray2<f32>>()?.as_slice_mut().map_err(slice_err)?)
                },
                rewards: if self.batch.f32_rewards() {
                    RewardsMut::F32(arrays.rewards.cast::<PyArray1<f32>>()?.as_slice_mut().map_err(slice_err)?)
                } else {
                    RewardsMut::F64(arrays.rewards.cast::<PyArray1<f64>>()?.as_slice_mut().map_err(slice_err)?)
                },
                terminated: arrays.terminated.as_slice_mut().map_err(slice_err)?,
                truncated: arrays.truncated.as_slice_mut().map_err(slice_err)?,
                final_obs: if self.discrete_obs {
                    ObsMut::Index(&mut self.final_i64)
                } else {
                    ObsMut::Vector(&mut self.final_f32)
                },
            }
        };
        let batch = &mut self.batch;
        let r = if self.n >= DETACH_MIN_ENVS { py.detach(|| batch.step(acts, out)) } else { batch.step(acts, out) };
        r.py()
    }
}

type StepOut<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyDict>);

#[pymethods]
impl PyVecEnv {
    /// `num_envs` copies of env `id`.
    ///
    /// * `autoreset_mode`: `"NextStep"` or `"SameStep"` (Gymnasium's `AutoresetMode` values);
    /// * `vectorization`: `"auto"` (the hand-vectorised batch where the env has one, seeded as
    ///   `gymnasium.make_vec` seeds it), `"per_env"` (the same batch, env `i` seeded `seed + i` as
    ///   `SyncVectorEnv`) or `"sync"` (scalar envs in a Rust loop, like `SyncVectorEnv`, for every env);
    /// * `copy`: return fresh arrays (`True`) or the same reused ones (`False`).
    #[new]
    #[pyo3(signature = (id, num_envs, kwargs=None, max_episode_steps=None, autoreset_mode="NextStep", vectorization="auto", copy=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        id: &str,
        num_envs: usize,
        kwargs: Option<&Bound<'_, PyDict>>,
        max_episode_steps: Option<usize>,
        autoreset_mode: &str,
        vectorization: &str,
        copy: bool,
    ) -> PyResult<Self> {
        crate::errors::guarded(|| {
            if num_envs == 0 {
                return Err(PyValueError::new_err("num_envs must be at least 1"));
            }
            if max_episode_steps == Some(0) {
                return Err(PyValueError::new_err("max_episode_steps must be at least 1"));
            }
            let mode = match autoreset_mode {
                "NextStep" => Autoreset::NextStep,
                "SameStep" => Autoreset::SameStep,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "autoreset_mode {other:?}: rlox vector envs support NextStep and SameStep (not Disabled)"
                    )))
                }
            };
            if !["auto", "per_env", "sync"].contains(&vectorization) {
                return Err(PyValueError::new_err(format!(
                    "vectorization {vectorization:?} is not 'auto', 'per_env' or 'sync'"
                )));
            }
            let recipe = Recipe::parse(id, Kwargs::new(id, kwargs)?)?;
            let batch = if vectorization == "sync" {
                None
            } else {
                native(&recipe, num_envs, max_episode_steps, mode, vectorization).transpose().py()?
            };
            let batch = match batch {
                Some(b) => b,
                None => {
                    let envs = (0..num_envs).map(|_| recipe.core(max_episode_steps)).collect();
                    Box::new(SyncBatch::new(envs, mode).py()?) as Box<dyn Batch>
                }
            };
            let action_space = batch.single_action_space();
            let action_kind = match &action_space {
                Space::Discrete(_) => ActionKind::Index,
                Space::Box(b) => ActionKind::Vector(b.dim()),
                other => return Err(PyValueError::new_err(format!("{id}: unsupported action space {other}"))),
            };
            let observation_space = batch.single_observation_space();
            let discrete_obs = observation_space.is_discrete();
            let obs_dim = observation_space.flat_dim();
            let n = num_envs;
            let buffers = (!copy).then(|| {
                let obs = if discrete_obs {
                    PyArray1::<i64>::zeros(py, n, false).into_any().unbind()
                } else {
                    PyArray2::<f32>::zeros(py, [n, obs_dim], false).into_any().unbind()
                };
                let rewards = if batch.f32_rewards() {
                    PyArray1::<f32>::zeros(py, n, false).into_any().unbind()
                } else {
                    PyArray1::<f64>::zeros(py, n, false).into_any().unbind()
                };
                (obs, rewards, PyArray1::zeros(py, n, false).unbind(), PyArray1::zeros(py, n, false).unbind())
            });
            Ok(PyVecEnv {
                batch,
                n,
                obs_dim,
                discrete_obs,
                action_kind,
                action_space,
                act_index: Vec::with_capacity(n),
                act_vector: Vec::new(),
                copy,
                buffers,
                final_f32: if discrete_obs { Vec::new() } else { vec![0.0; n * obs_dim] },
                final_i64: if discrete_obs { vec![0; n] } else { Vec::new() },
                started: false,
                closed: false,
                broken: None,
            })
        })
    }

    /// The env id.
    #[getter]
    fn id(&self) -> String {
        self.batch.id().to_string()
    }

    /// Number of envs.
    #[getter]
    fn num_envs(&self) -> usize {
        self.n
    }

    /// Whether `step` returns fresh arrays.
    #[getter]
    fn copy(&self) -> bool {
        self.copy
    }

    /// `"NextStep"` or `"SameStep"`.
    #[getter]
    fn autoreset_mode(&self) -> &'static str {
        match self.batch.autoreset() {
            Autoreset::NextStep => "NextStep",
            Autoreset::SameStep => "SameStep",
        }
    }

    /// Whether the hand-vectorised batch runs this env (else scalar envs in a loop).
    #[getter]
    fn vectorized(&self) -> bool {
        self.batch.native()
    }

    /// The observation space of one env, as a description.
    #[getter]
    fn single_observation_space<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        convert::space(py, &self.batch.single_observation_space())
    }

    /// The action space of one env, as a description.
    #[getter]
    fn single_action_space<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        convert::space(py, &self.action_space)
    }

    /// Reset every env: `seed` is `None`, an int (env `i` gets `seed + i`; CartPole's default batch
    /// seeds its one generator with it) or a list with one int or `None` per env. Returns `(obs, infos)`.
    #[pyo3(signature = (seed=None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        self.usable()?;
        let seeds = match seed {
            None => Seeds::None,
            Some(s) if s.is_none() => Seeds::None,
            Some(s) if s.is_instance_of::<PyList>() || s.is_instance_of::<PyTuple>() => Seeds::PerEnv(
                s.extract::<Vec<Option<u64>>>()
                    .map_err(|_| PyValueError::new_err("seed: a list of seeds must hold non-negative ints or None"))?,
            ),
            Some(s) => Seeds::Base(
                s.extract::<u64>().map_err(|_| PyValueError::new_err("seed must be a non-negative int below 2**64"))?,
            ),
        };
        let arrays = self.arrays(py)?;
        self.run(|me| {
            // SAFETY: as in `step_into`.
            let obs = unsafe {
                if me.discrete_obs {
                    ObsMut::Index(arrays.obs.cast::<PyArray1<i64>>()?.as_slice_mut().map_err(slice_err)?)
                } else {
                    ObsMut::Vector(arrays.obs.cast::<PyArray2<f32>>()?.as_slice_mut().map_err(slice_err)?)
                }
            };
            me.batch.reset(&seeds, obs).py()?;
            me.started = true;
            Ok((arrays.obs.clone(), me.infos(py)?))
        })
    }

    /// Step every env with its action; returns `(obs, rewards, terminated, truncated, infos)`.
    fn step<'py>(&mut self, py: Python<'py>, actions: &Bound<'py, PyAny>) -> PyResult<StepOut<'py>> {
        self.usable()?;
        if !self.started {
            return Err(ResetNeeded::new_err("Cannot call step() before calling reset()"));
        }
        self.read_actions(actions)?;
        let arrays = self.arrays(py)?;
        self.run(|me| {
            me.step_into(py, &arrays)?;
            let infos = me.infos(py)?;
            Ok((arrays.obs, arrays.rewards, arrays.terminated.into_any(), arrays.truncated.into_any(), infos))
        })
    }

    /// Seconds per call of the Rust batch step alone (`calls` steps with the same actions into the
    /// same arrays, GIL held): the part of a step that is not Python, for `bench/python_envs.py --profile`.
    fn _bench_step(&mut self, py: Python<'_>, actions: &Bound<'_, PyAny>, calls: usize) -> PyResult<f64> {
        self.usable()?;
        if !self.started {
            return Err(ResetNeeded::new_err("Cannot call step() before calling reset()"));
        }
        self.read_actions(actions)?;
        let arrays = self.arrays(py)?;
        self.run(|me| {
            let start = std::time::Instant::now();
            for _ in 0..calls {
                me.step_into(py, &arrays)?;
            }
            Ok(start.elapsed().as_secs_f64() / calls.max(1) as f64)
        })
    }

    /// Close the batch (idempotent).
    fn close(&mut self) {
        self.closed = true;
    }

    /// Whether [`PyVecEnv::close`] was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed
    }

    fn __repr__(&self) -> String {
        format!("rlox._rlox.VecEnv({:?}, num_envs={})", self.batch.id(), self.n)
    }
}
