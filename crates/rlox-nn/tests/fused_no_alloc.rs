//! A training step of the fused path allocates nothing once its workspace is sized: forward,
//! backward, clipping, optimizer step and target update are counted by a global allocator. (The
//! products here are small, so they run on rlox's kernels on every CPU; on Intel cores products of a
//! million multiply-adds and more go to the gemm crate, which allocates its packing buffer per call:
//! see `rlox_nn::fused::gemm`.)

use rlox_nn::fused::{self, FusedMlp, FusedOptimizer};
use rlox_nn::testing::CountingAllocator;
use rlox_nn::{Activation, MlpConfig, OptimizerConfig};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn a_training_step_allocates_nothing() {
    // rlox's own kernels whatever the CPU (on Intel, large products may go to the gemm crate, which
    // allocates its packing buffer; these products are small, but an override must not change that).
    // The only test of this binary: nothing else reads the environment concurrently.
    std::env::set_var("RLOX_MLP_GEMM", "rlox");
    let mut rng = rlox_core::seeding::rng_from_seed(0);
    let config = MlpConfig::new(4, &[64, 64], 1).with_activation(Activation::Relu);
    let mut critics = FusedMlp::new(&config, 2, &mut rng);
    let mut target = critics.clone();
    let mut opt = FusedOptimizer::new(OptimizerConfig::adam(), critics.num_params());
    let batch = 32;
    let x: Vec<f32> = (0..batch * 4).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut ws = critics.workspace(batch);
    let mut d_out = vec![0.0f32; 2 * batch];
    let mut d_input = vec![0.0f32; batch * 4];
    let mut step = |critics: &mut FusedMlp, target: &mut FusedMlp| {
        let out = critics.forward(&x, batch, &mut ws);
        for (d, &o) in d_out.iter_mut().zip(out) {
            *d = 2.0 * (o - 1.0) / batch as f32;
        }
        critics.backward(&mut ws, &d_out, true, Some(&mut d_input));
        fused::clip_grad_norm(ws.grads_mut(), 0.5);
        opt.step(1e-3, critics.params_mut(), ws.grads());
        fused::polyak_update(target.params_mut(), critics.params(), 0.005);
    };
    step(&mut critics, &mut target);
    let before = CountingAllocator::count();
    for _ in 0..10 {
        step(&mut critics, &mut target);
    }
    assert_eq!(CountingAllocator::count() - before, 0, "allocations in 10 training steps");
}
