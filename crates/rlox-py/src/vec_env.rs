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

use crate::batch::{Actions, Autoreset, Batch, Fast, ObsBuf, ObsView, Seeds, SyncBatch};
use crate::catalog::{Kwargs, Recipe};
use crate::convert;
use crate::errors::{guard, ClosedEnvironmentError, IntoPy, InvalidAction, ResetNeeded};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use rlox_core::spaces::Space;
use rlox_envs::classic_control::{AcrobotVec, CartPoleVec, MountainCarContinuousVec, MountainCarVec, PendulumVec};

/// Batches at least this large step with the GIL released (other Python threads run meanwhile).
pub const DETACH_MIN_ENVS: usize = 1024;

/// How actions arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Index,
    Vector(usize),
}

struct Buffers {
    obs: Py<PyAny>,
    rewards: Py<PyArray1<f64>>,
    terminated: Py<PyArray1<bool>>,
    truncated: Py<PyArray1<bool>>,
}

/// A batch of rlox envs.
#[pyclass(module = "rlox._rlox", name = "VecEnv")]
pub struct PyVecEnv {
    batch: Box<dyn Batch>,
    n: usize,
    action_kind: ActionKind,
    action_space: Space,
    act_index: Vec<i64>,
    act_vector: Vec<f32>,
    copy: bool,
    buffers: Option<Buffers>,
    started: bool,
    closed: bool,
    broken: Option<String>,
}

/// The hand-vectorised batch of `recipe`, if it has one.
fn fast(recipe: &Recipe, id: &str, n: usize, limit: Option<usize>) -> Option<rlox_core::Result<Box<dyn Batch>>> {
    let limit = limit.unwrap_or(u32::MAX as usize);
    fn boxed<V>(id: &str, v: rlox_core::Result<V>) -> rlox_core::Result<Box<dyn Batch>>
    where
        V: rlox_core::vec_env::VecEnv + Send + Sync + 'static,
        V::Action: crate::batch::BatchAction,
    {
        v.map(|v| Box::new(Fast::new(id, v)) as Box<dyn Batch>)
    }
    Some(match recipe {
        Recipe::CartPole => boxed(id, CartPoleVec::with_time_limit(n, limit)),
        Recipe::Acrobot => boxed(id, AcrobotVec::with_time_limit(n, limit)),
        Recipe::MountainCar => boxed(id, MountainCarVec::with_time_limit(n, limit)),
        Recipe::MountainCarContinuous => boxed(id, MountainCarContinuousVec::with_time_limit(n, limit)),
        Recipe::Pendulum => boxed(id, PendulumVec::with_time_limit(n, limit)),
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

/// Copy a 1-d (or 2-d) NumPy array of element type `T` into `dst`, converting each element.
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
            }
        }
        Ok(())
    }

    /// The infos of the last call as a dict in Gymnasium's vector layout.
    fn infos<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(infos) = self.batch.infos() {
            convert::vec_infos(py, infos, &d)?;
        }
        if let Some(finals) = self.batch.finals() {
            if finals.mask.contains(&true) {
                let n = self.n;
                let mut objs: Vec<Py<PyAny>> = Vec::with_capacity(n);
                for i in 0..n {
                    objs.push(if !finals.mask[i] {
                        py.None()
                    } else {
                        match &finals.obs {
                            ObsBuf::Index(v) => v[i].into_pyobject(py)?.into_any().unbind(),
                            ObsBuf::Vector(v) => {
                                let d = v.len() / n;
                                PyArray1::from_slice(py, &v[i * d..(i + 1) * d]).into_any().unbind()
                            }
                        }
                    });
                }
                d.set_item("final_obs", PyArray1::from_vec(py, objs))?;
                d.set_item("_final_obs", PyArray1::from_slice(py, &finals.mask))?;
                let fi = PyDict::new(py);
                convert::vec_infos(py, &finals.infos, &fi)?;
                d.set_item("final_info", fi)?;
                d.set_item("_final_info", PyArray1::from_slice(py, &finals.mask))?;
            }
        }
        Ok(d)
    }

    /// `(obs, rewards, terminated, truncated)` after a call: fresh arrays, or the reused buffers.
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<[Bound<'py, PyAny>; 4]> {
        let b = &*self.batch;
        let Some(bufs) = &self.buffers else {
            let obs = match b.obs() {
                ObsView::Index(v) => PyArray1::from_slice(py, v).into_any(),
                ObsView::Vector(v) => {
                    let d = v.len() / self.n;
                    // SAFETY: the array is new, contiguous, and fully written before anyone sees it.
                    let a = unsafe { PyArray2::<f32>::new(py, [self.n, d], false) };
                    unsafe { a.as_slice_mut() }.map_err(|e| PyRuntimeError::new_err(e.to_string()))?.copy_from_slice(v);
                    a.into_any()
                }
            };
            return Ok([
                obs,
                PyArray1::from_slice(py, b.rewards()).into_any(),
                PyArray1::from_slice(py, b.terminated()).into_any(),
                PyArray1::from_slice(py, b.truncated()).into_any(),
            ]);
        };
        let err = |e: numpy::AsSliceError| PyRuntimeError::new_err(format!("rlox output buffer: {e}"));
        let obs = bufs.obs.bind(py);
        // SAFETY: the buffers were allocated by this object, are contiguous, and are written under the
        // GIL while no Rust borrow of them exists; Python code sees the new values after this call.
        unsafe {
            match b.obs() {
                ObsView::Index(v) => obs.cast::<PyArray1<i64>>()?.as_slice_mut().map_err(err)?.copy_from_slice(v),
                ObsView::Vector(v) => obs.cast::<PyArray2<f32>>()?.as_slice_mut().map_err(err)?.copy_from_slice(v),
            }
            bufs.rewards.bind(py).as_slice_mut().map_err(err)?.copy_from_slice(b.rewards());
            bufs.terminated.bind(py).as_slice_mut().map_err(err)?.copy_from_slice(b.terminated());
            bufs.truncated.bind(py).as_slice_mut().map_err(err)?.copy_from_slice(b.truncated());
        }
        Ok([
            obs.clone(),
            bufs.rewards.bind(py).clone().into_any(),
            bufs.terminated.bind(py).clone().into_any(),
            bufs.truncated.bind(py).clone().into_any(),
        ])
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
}

type StepOut<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyDict>);

#[pymethods]
impl PyVecEnv {
    /// `num_envs` copies of env `id`.
    ///
    /// * `autoreset_mode`: `"NextStep"` or `"SameStep"` (Gymnasium's `AutoresetMode` values);
    /// * `vectorization`: `"auto"` (the hand-vectorised batch where one exists, else `"sync"`) or
    ///   `"sync"` (scalar envs in a loop, like Gymnasium's `SyncVectorEnv`);
    /// * `copy`: return fresh arrays (`True`) or the same reused ones (`False`).
    #[new]
    #[pyo3(signature = (id, num_envs, kwargs=None, max_episode_steps=None, autoreset_mode="NextStep", vectorization="auto", copy=true))]
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
            let recipe = Recipe::parse(id, Kwargs::new(id, kwargs)?)?;
            let batch = match (vectorization, mode) {
                ("auto", Autoreset::NextStep) => fast(&recipe, id, num_envs, max_episode_steps).transpose().py()?,
                ("auto" | "sync", _) => None,
                (other, _) => {
                    return Err(PyValueError::new_err(format!("vectorization {other:?} is not 'auto' or 'sync'")))
                }
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
            let n = num_envs;
            let buffers = if copy {
                None
            } else {
                let obs = match batch.single_observation_space() {
                    Space::Discrete(_) => PyArray1::<i64>::zeros(py, n, false).into_any().unbind(),
                    s => PyArray2::<f32>::zeros(py, [n, s.flat_dim()], false).into_any().unbind(),
                };
                Some(Buffers {
                    obs,
                    rewards: PyArray1::zeros(py, n, false).unbind(),
                    terminated: PyArray1::zeros(py, n, false).unbind(),
                    truncated: PyArray1::zeros(py, n, false).unbind(),
                })
            };
            Ok(PyVecEnv {
                batch,
                n,
                action_kind,
                action_space,
                act_index: Vec::with_capacity(n),
                act_vector: Vec::new(),
                copy,
                buffers,
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
        self.batch.infos().is_none()
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

    /// Reset every env: `seed` is `None`, an int (env `i` gets `seed + i`) or a list with one int or
    /// `None` per env. Returns `(obs, infos)`.
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
        self.run(|me| {
            me.batch.reset(&seeds).py()?;
            me.started = true;
            let [obs, ..] = me.outputs(py)?;
            Ok((obs, me.infos(py)?))
        })
    }

    /// Step every env with its action; returns `(obs, rewards, terminated, truncated, infos)`.
    fn step<'py>(&mut self, py: Python<'py>, actions: &Bound<'py, PyAny>) -> PyResult<StepOut<'py>> {
        self.usable()?;
        if !self.started {
            return Err(ResetNeeded::new_err("Cannot call step() before calling reset()"));
        }
        self.read_actions(actions)?;
        self.run(|me| {
            let acts = match me.action_kind {
                ActionKind::Index => Actions::Index(&me.act_index),
                ActionKind::Vector(dim) => Actions::Vector { data: &me.act_vector, dim },
            };
            let batch = &mut me.batch;
            let r = if me.n >= DETACH_MIN_ENVS { py.detach(|| batch.step(acts)) } else { batch.step(acts) };
            r.py()?;
            let [obs, rew, term, trunc] = me.outputs(py)?;
            let infos = me.infos(py)?;
            Ok((obs, rew, term, trunc, infos))
        })
    }

    /// Seconds per call of the Rust batch step alone (`calls` steps with the same actions, in a Rust
    /// loop, GIL held): the part of a step that is not Python, for `bench/python_envs.py --profile`.
    fn _bench_step(&mut self, actions: &Bound<'_, PyAny>, calls: usize) -> PyResult<f64> {
        self.usable()?;
        if !self.started {
            return Err(ResetNeeded::new_err("Cannot call step() before calling reset()"));
        }
        self.read_actions(actions)?;
        self.run(|me| {
            let acts = match me.action_kind {
                ActionKind::Index => Actions::Index(&me.act_index),
                ActionKind::Vector(dim) => Actions::Vector { data: &me.act_vector, dim },
            };
            let start = std::time::Instant::now();
            for _ in 0..calls {
                me.batch.step(acts).py()?;
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
