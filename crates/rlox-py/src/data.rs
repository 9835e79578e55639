//! The data store from Python: rollout workers write env steps through rlox-data's Hive/Spark-safe
//! writer (atomic part files, zstd, spec-compliant lists), and `rlox.data` reads any rlox Parquet
//! output back with pyarrow.

use crate::errors::data_to_py;
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rlox_data::env_steps::{EnvStepStore, EnvSteps};
use rlox_data::write::{Compression, WriteOptions};

/// Write one worker's env steps of one step as `root/run=<run>/step=<step>/part-<worker>.parquet`;
/// returns the path. `obs` is `(rows, obs_dim)` `float32`, `action` `(rows, action_dim)` `float64`.
#[pyfunction]
#[pyo3(signature = (root, run, step, worker, env, t, obs, action, reward, terminated, truncated, compression="zstd"))]
#[allow(clippy::too_many_arguments)]
pub fn write_env_steps(
    py: Python<'_>,
    root: std::path::PathBuf,
    run: &str,
    step: i64,
    worker: i64,
    env: PyReadonlyArray1<'_, i64>,
    t: PyReadonlyArray1<'_, i64>,
    obs: PyReadonlyArray2<'_, f32>,
    action: PyReadonlyArray2<'_, f64>,
    reward: PyReadonlyArray1<'_, f64>,
    terminated: PyReadonlyArray1<'_, bool>,
    truncated: PyReadonlyArray1<'_, bool>,
    compression: &str,
) -> PyResult<String> {
    crate::errors::guarded(|| {
        let compression = match compression {
            "zstd" => Compression::Zstd(3),
            "snappy" => Compression::Snappy,
            "none" => Compression::None,
            other => return Err(PyValueError::new_err(format!("compression {other:?} is not zstd, snappy or none"))),
        };
        let contiguous = |name: &str| PyValueError::new_err(format!("{name} must be a C-contiguous array"));
        let obs_dim = obs.shape()[1];
        let action_dim = action.shape()[1];
        let rows = EnvSteps {
            worker,
            env: env.as_slice().map_err(|_| contiguous("env"))?,
            t: t.as_slice().map_err(|_| contiguous("t"))?,
            obs: obs.as_slice().map_err(|_| contiguous("obs"))?,
            obs_dim,
            action: action.as_slice().map_err(|_| contiguous("action"))?,
            action_dim,
            reward: reward.as_slice().map_err(|_| contiguous("reward"))?,
            terminated: terminated.as_slice().map_err(|_| contiguous("terminated"))?,
            truncated: truncated.as_slice().map_err(|_| contiguous("truncated"))?,
        };
        let options = WriteOptions { compression, ..WriteOptions::default() };
        let store = EnvStepStore::new(&root, run, options);
        // Encoding and compressing a batch takes milliseconds: let other Python threads run.
        let path = py.detach(|| store.write(step, &rows)).map_err(data_to_py)?;
        Ok(path.display().to_string())
    })
}
