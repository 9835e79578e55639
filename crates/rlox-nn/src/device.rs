//! Device selection.
//!
//! burn 0.22 dispatches at run time: tensors and modules carry a [`Device`], and there is no
//! backend type parameter to alias. Training needs an autodiff device ([`Device::autodiff`]);
//! inference can use the plain one. [`train_device`] returns the former for a [`DeviceKind`].

use burn::tensor::Device;
use rlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend, Flex (feature `flex`, the default).
    #[default]
    Cpu,
    /// The NdArray CPU backend (feature `ndarray`; deprecated upstream, kept as a fallback).
    Ndarray,
    /// CUDA through CubeCL (feature `cuda`), GPU with this index.
    Cuda(usize),
}

impl DeviceKind {
    /// Parse `cpu`, `ndarray`, `cuda` or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "cpu" | "flex" => Ok(DeviceKind::Cpu),
            "ndarray" => Ok(DeviceKind::Ndarray),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            _ => match text.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(i) => Ok(DeviceKind::Cuda(i)),
                None => Err(Error::invalid("device", format!("'{text}': expected cpu, ndarray, cuda or cuda:N"))),
            },
        }
    }

    /// The plain (inference) device, or an error naming the cargo feature that is missing.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceKind::Cpu => cpu_device(),
            DeviceKind::Ndarray => {
                #[cfg(feature = "ndarray")]
                return Ok(Device::ndarray());
                #[cfg(not(feature = "ndarray"))]
                Err(missing("ndarray"))
            }
            DeviceKind::Cuda(_index) => {
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(_index));
                #[cfg(not(feature = "cuda"))]
                Err(missing("cuda"))
            }
        }
    }
}

#[allow(dead_code)]
fn missing(feature: &str) -> Error {
    Error::invalid(
        "device",
        format!("rlox was built without the '{feature}' feature; rebuild with --features {feature}"),
    )
}

/// The CPU device: Flex when the `flex` feature is on, else NdArray.
pub fn cpu_device() -> Result<Device> {
    #[cfg(feature = "flex")]
    return Ok(Device::flex());
    #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
    return Ok(Device::ndarray());
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    Err(missing("flex"))
}

/// The autodiff device of `kind`, with its random stream seeded (parameter initialisation draws from it).
///
/// burn may keep one generator per backend rather than per device: seed before creating each model,
/// in a fixed order, and runs repeat.
pub fn train_device(kind: DeviceKind, seed: u64) -> Result<Device> {
    let device = kind.device()?.autodiff();
    device.seed(seed);
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_kinds() {
        assert_eq!(DeviceKind::parse("cpu").unwrap(), DeviceKind::Cpu);
        assert_eq!(DeviceKind::parse("cuda:2").unwrap(), DeviceKind::Cuda(2));
        assert!(DeviceKind::parse("tpu").unwrap_err().to_string().contains("tpu"));
    }

    #[test]
    fn cpu_train_device_has_autodiff() {
        let d = train_device(DeviceKind::Cpu, 0).unwrap();
        assert!(d.is_autodiff());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_an_error() {
        let e = DeviceKind::Cuda(0).device().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
