//! Test helpers for code that builds networks.

use crate::Grads;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

struct Check<'a> {
    grads: &'a Grads,
    path: Vec<String>,
    missing: Vec<String>,
    zero: Vec<String>,
    non_finite: Vec<String>,
    count: usize,
}

impl ModuleVisitor for Check<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.count += 1;
        let name = self.path.join(".");
        match self.grads.get::<D>(param.id) {
            None => self.missing.push(name),
            Some(g) => {
                let v: Vec<f32> = g.into_data().try_into_vec_as::<f32>().expect("f32");
                if v.iter().any(|x| !x.is_finite()) {
                    self.non_finite.push(name);
                } else if v.iter().all(|&x| x == 0.0) {
                    self.zero.push(name);
                }
            }
        }
    }
}

/// Run one backward pass from `loss` and panic unless every parameter of `module` received a
/// finite, non-zero gradient. The panic message lists the parameters that did not, by path.
///
/// This catches a graph cut by a non-differentiable op, a detached tensor, a frozen parameter or an
/// unused layer. Choose an input and a loss for which every parameter matters (random inputs, a
/// loss over all outputs).
pub fn assert_all_params_get_grad<M: Module>(module: &M, loss: &Tensor<1>) {
    let grads = crate::backward(loss, module);
    let mut c = Check {
        grads: &grads,
        path: Vec::new(),
        missing: Vec::new(),
        zero: Vec::new(),
        non_finite: Vec::new(),
        count: 0,
    };
    module.visit(&mut c);
    assert!(c.count > 0, "the module has no parameters");
    assert!(
        c.missing.is_empty() && c.zero.is_empty() && c.non_finite.is_empty(),
        "of {} parameters, no gradient: {:?}; all-zero gradient: {:?}; non-finite gradient: {:?}",
        c.count,
        c.missing,
        c.zero,
        c.non_finite
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{train_device, DeviceKind};
    use crate::mlp::MlpConfig;

    #[test]
    #[should_panic(expected = "no gradient: [\"layers.1.weight\", \"layers.1.bias\"]")]
    fn detached_layer_is_reported() {
        let device = train_device(DeviceKind::Cpu, 0).unwrap();
        let mlp = MlpConfig::new(2, &[4], 1).init(&device);
        // Use only the first layer: the second gets no gradient.
        let loss = mlp.layers[0].forward(Tensor::<2>::ones([3, 2], &device)).square().mean();
        assert_all_params_get_grad(&mlp, &loss);
    }
}

/// A global allocator for tests that count allocations: the system allocator, counting every
/// `alloc` and `realloc`. A test binary installs it with
/// `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;` and reads
/// [`CountingAllocator::count`] around the code under test.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAllocator;

static ALLOCATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl CountingAllocator {
    /// Allocations (and reallocations) so far in this process.
    pub fn count() -> usize {
        ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// SAFETY: forwards every call to the system allocator; only counts.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { std::alloc::GlobalAlloc::alloc(&std::alloc::System, layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { std::alloc::GlobalAlloc::dealloc(&std::alloc::System, ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller upholds `realloc`'s contract.
        unsafe { std::alloc::GlobalAlloc::realloc(&std::alloc::System, ptr, layout, new_size) }
    }
}
