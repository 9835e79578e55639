//! The fast path for the small MLPs of RL: forward, backward and optimizer step on flat buffers,
//! with no autodiff graph, no per-operation allocation and no dispatch through a tensor library.
//!
//! A training step of a 4-64-64-2 network at batch 32 is about 0.9 MFLOP: at this machine's GEMM
//! rate that is a few microseconds, and a framework's per-operation bookkeeping (graph nodes,
//! tensor allocations, gradient maps) costs more than the arithmetic. Here a step is a fixed sequence
//! of calls into register-blocked GEMM kernels ([`gemm`]) and vectorised loops ([`vector`]) over
//! buffers allocated once ([`Workspace`]).
//!
//! * [`FusedMlp`]: one MLP, or several of one shape fed the same input (the twin critics of
//!   TD3/SAC), with the parameters flat; `forward` records what `backward` needs; the caller supplies
//!   `dL/d(output)` (losses and heads stay in the trainers). Checkpoints in the layout of
//!   [`crate::Mlp`].
//! * [`FusedOptimizer`]: Adam, AdamW, SGD and RMSprop of [`crate::OptimizerConfig`] with rlox-nn's
//!   semantics, one loop over all parameters; [`clip_grad_norm`] and [`polyak_update`] likewise.
//!
//! One training step of a Q-network on a squared TD error (the loss gradient is the caller's):
//!
//! ```
//! use rlox_nn::fused::{self, FusedMlp, FusedOptimizer};
//! use rlox_nn::{MlpConfig, OptimizerConfig};
//!
//! let mut rng = rlox_core::seeding::rng_from_seed(0);
//! let mut q = FusedMlp::new(&MlpConfig::new(4, &[64, 64], 2), 1, &mut rng);
//! let mut opt = FusedOptimizer::new(OptimizerConfig::adam(), q.num_params());
//! let mut ws = q.workspace(32); // every buffer of the step, allocated once
//! let (obs, actions, targets) = (vec![0.1f32; 32 * 4], vec![1usize; 32], vec![1.0f32; 32]);
//!
//! let out = q.forward(&obs, 32, &mut ws); // [32, 2]
//! let mut d_out = vec![0.0f32; 32 * 2];
//! for (i, &a) in actions.iter().enumerate() {
//!     d_out[i * 2 + a] = (out[i * 2 + a] - targets[i]) / 32.0; // d/dQ of mean(0.5 (Q - y)^2)
//! }
//! q.backward(&mut ws, &d_out, true, None);
//! let norm = fused::clip_grad_norm(ws.grads_mut(), 10.0);
//! opt.step(1e-3, q.params_mut(), ws.grads());
//! assert!(norm.is_finite());
//! ```
//!
//! Instruction sets are chosen at run time: AVX-512F, AVX2+FMA, or portable Rust ([`isa`]); the
//! variable `RLOX_MLP_ISA` (`portable`, `avx2`, `avx512`) lowers the choice, for testing each path.
//! Burn stays the path for everything else (and for networks this does not cover); the tests check
//! that both give the same outputs and gradients.

pub use crate::attention::Isa;
use std::sync::OnceLock;

/// Define `$vis fn $name(isa, args..)` that runs the `#[inline(always)]` body `$body` compiled for
/// the best instruction set of `isa` this CPU supports (AVX-512F, AVX2+FMA, or the baseline).
macro_rules! per_isa {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$meta])*
        $vis fn $name(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match isa {
                    // SAFETY: the instruction set is supported by this CPU (checked at run time).
                    Isa::Avx512 if Isa::Avx512.supported() => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    Isa::Avx2 | Isa::Avx512 if Isa::Avx2.supported() => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}

mod denormals;
pub mod gemm;
mod mlp;
mod optim;
pub mod vector;

pub use denormals::FlushDenormals;
pub use mlp::{FusedMlp, Workspace};
pub use optim::{clip_grad_norm, clip_grad_norm_parts, grad_norm, polyak_update, FusedOptimizer, FusedOptimizerState};

/// The instruction set of the fused path: the best this CPU has, lowered by `RLOX_MLP_ISA`
/// (`portable`, `avx2`); detected once.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let best = Isa::best();
        match std::env::var("RLOX_MLP_ISA").as_deref() {
            Ok("portable") => Isa::Portable,
            Ok("avx2") if best != Isa::Portable => Isa::Avx2,
            _ => best,
        }
    })
}
