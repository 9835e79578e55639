//! # rlox-py
//!
//! The Rust half of the `rlox` Python package (`rlox._rlox`, built by maturin from `python/`):
//!
//! * [`env::PyEnv`]: one env with Gymnasium 1.x semantics, wrapped by `rlox.make` into a
//!   `gymnasium.Env`;
//! * [`vec_env::PyVecEnv`]: a batch stepped by one call into NumPy arrays, wrapped by `rlox.make_vec`
//!   into a `gymnasium.vector.VectorEnv` and by `rlox.sb3.make_vec_env` into an SB3 `VecEnv`;
//! * [`data::write_env_steps`]: the Hive-partitioned env-step store the Ray workers fill;
//! * [`train::train`]: any `rlox train` config (or a resume) through [`rlox_runner`], behind `rlox.train`;
//! * [`specs`]: the registry, for `gymnasium.register("rlox/...")`.
//!
//! Errors become the Python exceptions Gymnasium and NumPy raise ([`errors`]); a panic becomes a
//! `RuntimeError` and never reaches the interpreter.

pub mod batch;
pub mod catalog;
pub mod convert;
pub mod core;
pub mod data;
pub mod env;
pub mod errors;
pub mod render;
pub mod train;
pub mod vec_env;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Every env rlox has: `[{id, description, max_episode_steps, options}]` in registry order.
#[pyfunction]
fn specs(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    rlox_envs::registry::SPECS
        .iter()
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("id", s.id)?;
            d.set_item("description", s.description)?;
            d.set_item("max_episode_steps", s.max_episode_steps)?;
            d.set_item("options", s.options.to_vec())?;
            Ok(d)
        })
        .collect()
}

/// Whether env `id` renders `rgb_array` frames.
#[pyfunction]
fn renders(id: &str) -> bool {
    render::renders(id)
}

/// Panic inside rlox (for the test that checks a panic becomes a `RuntimeError`).
#[pyfunction]
fn _panic_for_tests(message: &str) -> PyResult<()> {
    errors::guarded(|| panic!("{message}"))
}

/// Seconds per release-and-retake of the GIL (`py.detach(|| ())`), averaged over `calls`: what
/// releasing the GIL around a step costs (`bench/python_envs.py --profile`).
#[pyfunction]
fn _detach_cost(py: Python<'_>, calls: usize) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..calls {
        py.detach(|| std::hint::black_box(()));
    }
    start.elapsed().as_secs_f64() / calls.max(1) as f64
}

/// The Rust core of the `rlox` Python package.
#[pymodule]
fn _rlox(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::install_panic_hook();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DETACH_MIN_ENVS", vec_env::DETACH_MIN_ENVS)?;
    m.add_class::<env::PyEnv>()?;
    m.add_class::<vec_env::PyVecEnv>()?;
    m.add_function(wrap_pyfunction!(specs, m)?)?;
    m.add_function(wrap_pyfunction!(renders, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(_detach_cost, m)?)?;
    m.add_function(wrap_pyfunction!(data::write_env_steps, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    Ok(())
}
