//! From Rust errors (and panics) to the Python exceptions a Gymnasium or NumPy user expects.
//!
//! | rlox error | Python exception | why that one |
//! |---|---|---|
//! | an action outside the action space | `rlox.errors.InvalidAction` (a `ValueError` and an `AssertionError`) | Gymnasium's envs `assert action_space.contains(action)`; NumPy-style code catches `ValueError` |
//! | `step` before `reset` | `gymnasium.error.ResetNeeded` | what Gymnasium's `OrderEnforcing` wrapper raises |
//! | a call on a closed env | `gymnasium.error.ClosedEnvironmentError` | what Gymnasium's vector envs raise |
//! | a bad value (option, seed, shape) | `ValueError` | |
//! | a file that cannot be read or written | `OSError` (`FileNotFoundError`, ...) | |
//! | a training whose loss became NaN or infinite | `FloatingPointError` | NumPy's `errstate(all="raise")` raises it |
//! | a damaged checkpoint | `ValueError` naming the file | |
//! | a panic inside rlox (a bug) | `RuntimeError` naming the panic | a Rust panic must never take the interpreter down |
//!
//! Panics are caught at the boundary by [`guard`]. While rlox code runs, the panic hook keeps the
//! message for the exception instead of printing `thread panicked at ...` to stderr; panics of other
//! Rust code in the same process still reach the hook that was installed before.

use pyo3::exceptions::{PyFloatingPointError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use pyo3::PyResult;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

mod py_gymnasium {
    pyo3::import_exception!(gymnasium.error, ResetNeeded);
    pyo3::import_exception!(gymnasium.error, ClosedEnvironmentError);
}
mod py_rlox {
    pyo3::import_exception!(rlox.errors, InvalidAction);
}

pub use py_gymnasium::{ClosedEnvironmentError, ResetNeeded};
pub use py_rlox::InvalidAction;

/// The Python exception for an rlox error.
pub fn to_py(err: rlox_core::Error) -> PyErr {
    use rlox_core::Error as E;
    let msg = err.to_string();
    match err {
        E::InvalidAction { .. } => InvalidAction::new_err(msg),
        E::NeedsReset { .. } => ResetNeeded::new_err(msg),
        E::Io { source, .. } => PyErr::from(std::io::Error::new(source.kind(), msg)),
        E::Invalid { .. } | E::Unknown { .. } | E::Config { .. } => PyValueError::new_err(msg),
        E::Plot { .. } => PyRuntimeError::new_err(msg),
        E::Diverged { .. } => PyFloatingPointError::new_err(msg),
        E::Checkpoint { .. } => PyValueError::new_err(msg),
    }
}

/// The Python exception for an rlox-data error.
pub fn data_to_py(err: rlox_data::Error) -> PyErr {
    let msg = err.to_string();
    match err {
        rlox_data::Error::Io { source, .. } => PyErr::from(std::io::Error::new(source.kind(), msg)),
        _ => PyValueError::new_err(msg),
    }
}

/// `OSError` with a message (for I/O outside rlox-data).
pub fn os_error(msg: impl Into<String>) -> PyErr {
    PyOSError::new_err(msg.into())
}

/// Shorthand: an rlox result as a Python result.
pub trait IntoPy<T> {
    /// Map the error with [`to_py`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for rlox_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

thread_local! {
    /// Set while rlox code runs inside [`guard`] on this thread.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic caught inside [`guard`] on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Install the panic hook (once per process): quiet inside [`guard`], the previous hook elsewhere.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if INSIDE.with(Cell::get) {
                let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{payload}{location}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`, turning a panic into a `RuntimeError` (and never unwinding into Python).
///
/// Returns `Err(Poisoned)`-style information through the flag: callers that own mutable state
/// mark it unusable after a panic, since the panic may have left it half-updated.
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> Result<PyResult<T>, PyErr> {
    let was_inside = INSIDE.with(|c| c.replace(true));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|c| c.set(was_inside));
    match out {
        Ok(r) => Ok(r),
        Err(_) => {
            let msg = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in rlox (a bug: please report it with this message): {msg}"
            )))
        }
    }
}

/// [`guard`] for calls that own no state worth poisoning.
pub fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    guard(f).and_then(|r| r)
}
