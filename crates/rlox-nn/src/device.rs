//! Device selection.
//!
//! burn 0.22 dispatches at run time: tensors and modules carry a [`Device`], and there is no
//! backend type parameter to alias. Training needs an autodiff device ([`Device::autodiff`]);
//! inference can use the plain one. [`train_device`] returns the former for a [`DeviceKind`].

use burn::tensor::Device;
use rlox_core::{Error, Result};

pub use rlox_core::run::DeviceKind;

/// The plain (inference) device of `kind`, or an error naming the cargo feature that is missing.
///
/// `DeviceKind::Cuda(i)` is CubeCL's CUDA device with the `cuda` feature, else libtorch's CUDA device
/// with the `tch` feature (burn-tch, which builds offline against an installed PyTorch).
pub fn device_of(kind: DeviceKind) -> Result<Device> {
    match kind {
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
            // burn marks burn-tch deprecated in favour of CubeCL, whose CUDA runtime cannot be built
            // offline (see the `cuda` feature); LibTorch is the GPU path that builds here.
            #[cfg(all(not(feature = "cuda"), feature = "tch"))]
            #[allow(deprecated)]
            return Ok(Device::libtorch_cuda(_index));
            #[cfg(not(any(feature = "cuda", feature = "tch")))]
            Err(missing("cuda"))
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
    let device = device_of(kind)?.autodiff();
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

    #[cfg(not(any(feature = "cuda", feature = "tch")))]
    #[test]
    fn cuda_without_feature_is_an_error() {
        let e = device_of(DeviceKind::Cuda(0)).unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
