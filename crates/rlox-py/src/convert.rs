//! Rust values to Python: spaces (as plain descriptions that `rlox.spaces` turns into Gymnasium
//! spaces), infos (dicts with Gymnasium's types), vector infos (Gymnasium's `{key, _key}` layout).

use crate::batch::{Column, VecInfos};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use rlox_core::env::{Info, InfoValue};
use rlox_core::spaces::Space;

/// `("Discrete", n, start)`, `("Box", low, high, shape)` or `("MultiDiscrete", nvec)`.
pub fn space<'py>(py: Python<'py>, space: &Space) -> PyResult<Bound<'py, PyTuple>> {
    match space {
        Space::Discrete(d) => PyTuple::new(
            py,
            [
                "Discrete".into_pyobject(py)?.into_any(),
                d.n.into_pyobject(py)?.into_any(),
                d.start.into_pyobject(py)?.into_any(),
            ],
        ),
        Space::Box(b) => PyTuple::new(
            py,
            [
                "Box".into_pyobject(py)?.into_any(),
                PyArray1::from_slice(py, &b.low).into_any(),
                PyArray1::from_slice(py, &b.high).into_any(),
                PyTuple::new(py, &b.shape)?.into_any(),
            ],
        ),
        Space::MultiDiscrete(m) => PyTuple::new(
            py,
            [
                "MultiDiscrete".into_pyobject(py)?.into_any(),
                PyArray1::from_slice(py, &m.nvec.iter().map(|&n| n as i64).collect::<Vec<_>>()).into_any(),
            ],
        ),
    }
}

/// Gymnasium stores some infos with a NumPy dtype of its own: Taxi's `action_mask` is `int8`.
fn is_int8_key(key: &str) -> bool {
    key == "action_mask"
}

/// One info value as Gymnasium would give it.
fn value<'py>(py: Python<'py>, key: &str, v: &InfoValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        InfoValue::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        InfoValue::Int(i) => i.into_pyobject(py)?.into_any(),
        InfoValue::Float(x) => x.into_pyobject(py)?.into_any(),
        InfoValue::Text(s) => s.into_pyobject(py)?.into_any(),
        InfoValue::Floats(v) if is_int8_key(key) => {
            PyArray1::from_vec(py, v.iter().map(|&x| x as i8).collect::<Vec<_>>()).into_any()
        }
        InfoValue::Floats(v) => PyArray1::from_slice(py, v).into_any(),
    })
}

/// An info map as a dict.
pub fn info<'py>(py: Python<'py>, info: &Info) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in info.iter() {
        d.set_item(k, value(py, k, v)?)?;
    }
    Ok(d)
}

/// Vector infos in Gymnasium's layout: `infos[key]` holds one value per env, `infos["_" + key]` says
/// which envs reported it. Keys no env reported at this call are left out.
pub fn vec_infos<'py>(py: Python<'py>, infos: &VecInfos, out: &Bound<'py, PyDict>) -> PyResult<()> {
    for c in &infos.columns {
        if !c.mask.contains(&true) {
            continue;
        }
        let n = c.mask.len();
        let values = match &c.values {
            Column::Bool(v) => PyArray1::from_slice(py, v).into_any(),
            Column::Int(v) => PyArray1::from_slice(py, v).into_any(),
            Column::Float(v) => PyArray1::from_slice(py, v).into_any(),
            Column::Text(v) => {
                let objs: Vec<Py<PyAny>> = v.iter().map(|s| PyString::new(py, s).into_any().unbind()).collect();
                PyArray1::from_vec(py, objs).into_any()
            }
            Column::Floats { width, data } if is_int8_key(&c.key) => {
                let a = PyArray1::from_vec(py, data.iter().map(|&x| x as i8).collect::<Vec<_>>());
                a.reshape([n, *width])?.into_any()
            }
            Column::Floats { width, data } => PyArray1::from_slice(py, data).reshape([n, *width])?.into_any(),
        };
        out.set_item(&c.key, values)?;
        out.set_item(format!("_{}", c.key), PyArray1::from_slice(py, &c.mask))?;
    }
    Ok(())
}
