//! # rlox-core
//!
//! The floor every other rlox crate stands on. It knows nothing about tensors: it defines
//!
//! * [`spaces`]: the Gymnasium spaces `Discrete`, `Box` and `MultiDiscrete`, with `contains` and seeded sampling;
//! * [`env`]: the [`Env`] trait with Gymnasium 1.x semantics (`reset(seed)`, `step(action)` returning
//!   `terminated` for the end of the MDP and `truncated` for a time limit);
//! * [`wrappers`]: `TimeLimit` and `RecordEpisodeStatistics`;
//! * [`vec_env`]: a structure-of-arrays batch of environments with Gymnasium's `NEXT_STEP` autoreset;
//! * [`mdp`]: an explicit finite model (`Mdp`) and its compiled CSR form (`TabularMdp`);
//! * [`policy`] and [`trajectory`]: tabular policies, returns and trajectories;
//! * [`seeding`]: one seed per run drives every random choice: ChaCha streams for rlox's own
//!   components, and Gymnasium's own NumPy stream (`SeedSequence` + `PCG64`) for the environments;
//! * [`logger`], [`run`], [`checkpoint`], [`config`] and [`plot`]: the run infrastructure used by every trainer.
//!
//! The crate deliberately avoids heavy dependencies so that environments and tabular algorithms compile in seconds.
#![warn(missing_docs)]
// `!(x >= 0.0)` is deliberate throughout: it rejects NaN together with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod checkpoint;
pub mod config;
pub mod env;
pub mod error;
pub mod logger;
pub mod mdp;
pub mod plot;
pub mod policy;
pub mod run;
pub mod seeding;
pub mod spaces;
pub mod trajectory;
pub mod vec_env;
pub mod wrappers;

pub use env::{Env, Info, InfoValue, Step};
pub use error::{Error, Result};
pub use mdp::{Mdp, TabularMdp};
pub use policy::TabularPolicy;
pub use spaces::{BoxSpace, Discrete, MultiDiscrete, Space};
