//! Batches of envs stepped by one call: what `rlox.make_vec` and the SB3 adapter drive.
//!
//! A [`Batch`] writes every call's results straight into slices the caller owns ([`Out`]): the
//! NumPy arrays that Python receives, so a step copies nothing. Two implementations:
//!
//! * [`Native`]: a hand-vectorised classic-control batch of rlox-envs ([`BatchEnv`], e.g.
//!   `CartPoleVec`): one array per state component, SIMD dynamics where the env has them, the time
//!   limit and both of Gymnasium's autoreset modes inside its loop, and Gymnasium's vector seeding
//!   (`CartPoleVectorEnv`'s one shared generator, or `SyncVectorEnv`'s `seed + i`).
//! * [`SyncBatch`]: N scalar envs ([`Core`]) stepped in a loop, like Gymnasium's `SyncVectorEnv`:
//!   every env, both autoreset modes, any per-env seeds, and the envs' infos in Gymnasium's vector
//!   layout. Used for the toy-text envs and the grid world, and for `vectorization_mode="sync"`.
//!
//! Actions are validated for the whole batch before any env moves, so a bad action leaves every
//! env (and every output) where it was.

use crate::core::{ActionIn, Core, ObsOut};
use rlox_core::env::{Info, InfoValue};
use rlox_core::spaces::Space;
use rlox_core::{Error, Result};
use rlox_envs::classic_control::{AutoresetMode, BatchEnv, StepBuffers};

/// Gymnasium's `AutoresetMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoreset {
    /// A finished env is reset at the next call, which ignores its action and returns reward 0.
    NextStep,
    /// A finished env is reset in the same call; its last observation goes to `final_obs`.
    SameStep,
}

/// The seeds of a full reset.
#[derive(Debug, Clone, PartialEq)]
pub enum Seeds {
    /// Continue each env's stream.
    None,
    /// Env `i` gets `seed + i` (Gymnasium's `reset(seed=int)`).
    Base(u64),
    /// One seed (or none) per env (Gymnasium's `reset(seed=[...])`).
    PerEnv(Vec<Option<u64>>),
}

/// The actions of one call, flattened env-major.
#[derive(Debug, Clone, Copy)]
pub enum Actions<'a> {
    /// One index per env.
    Index(&'a [i64]),
    /// `dim` values per env.
    Vector {
        /// `num_envs * dim` values.
        data: &'a [f32],
        /// Values per env.
        dim: usize,
    },
}

impl<'a> Actions<'a> {
    fn get(&self, i: usize) -> ActionIn<'a> {
        match *self {
            Actions::Index(a) => ActionIn::Index(a[i]),
            Actions::Vector { data, dim } => ActionIn::Vector(&data[i * dim..(i + 1) * dim]),
        }
    }
}

/// Observation slices of a batch, env-major.
pub enum ObsMut<'a> {
    /// `Discrete` observations, one per env.
    Index(&'a mut [i64]),
    /// `Box` observations, `num_envs * dim`.
    Vector(&'a mut [f32]),
}

impl ObsMut<'_> {
    fn slot(&mut self, i: usize, dim: usize) -> ObsOut<'_> {
        match self {
            ObsMut::Index(v) => ObsOut::Index(&mut v[i]),
            ObsMut::Vector(v) => ObsOut::Vector(&mut v[i * dim..(i + 1) * dim]),
        }
    }

    fn copy_row_to(&self, dst: &mut ObsMut<'_>, i: usize, dim: usize) {
        match (self, dst) {
            (ObsMut::Index(s), ObsMut::Index(d)) => d[i] = s[i],
            (ObsMut::Vector(s), ObsMut::Vector(d)) => {
                d[i * dim..(i + 1) * dim].copy_from_slice(&s[i * dim..(i + 1) * dim])
            }
            _ => {}
        }
    }
}

/// The reward slice: `float64` (Gymnasium's `SyncVectorEnv`) or `float32` (`CartPoleVectorEnv`).
pub enum RewardsMut<'a> {
    /// `float64` rewards.
    F64(&'a mut [f64]),
    /// `float32` rewards.
    F32(&'a mut [f32]),
}

/// Where one call writes its results (every slice has one row per env).
pub struct Out<'a> {
    /// Observations after the call.
    pub obs: ObsMut<'a>,
    /// Rewards.
    pub rewards: RewardsMut<'a>,
    /// Terminated flags.
    pub terminated: &'a mut [bool],
    /// Truncated flags.
    pub truncated: &'a mut [bool],
    /// `SAME_STEP`: the last observation of each env whose episode ended in this call (other rows
    /// keep whatever they held); ignored in `NEXT_STEP`.
    pub final_obs: ObsMut<'a>,
}

/// The values of one info key across the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Booleans.
    Bool(Vec<bool>),
    /// Integers.
    Int(Vec<i64>),
    /// Reals (an integer column becomes real when a real arrives).
    Float(Vec<f64>),
    /// Text.
    Text(Vec<String>),
    /// Vectors of reals, `width` per env.
    Floats {
        /// Values per env.
        width: usize,
        /// `num_envs * width` values.
        data: Vec<f64>,
    },
}

/// One info key: its values and which envs reported it (Gymnasium's `_key` mask).
#[derive(Debug, Clone, PartialEq)]
pub struct InfoColumn {
    /// The key.
    pub key: String,
    /// One value per env (meaningless where `mask` is false).
    pub values: Column,
    /// Which envs reported the key at this call.
    pub mask: Vec<bool>,
}

/// The infos of one call in Gymnasium's vector layout. Columns are kept between calls (no
/// allocation once every key has been seen); a column whose mask is all false is not reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VecInfos {
    /// The columns, in order of first appearance.
    pub columns: Vec<InfoColumn>,
}

impl VecInfos {
    /// Forget the values of the previous call.
    pub fn clear(&mut self) {
        for c in &mut self.columns {
            c.mask.fill(false);
        }
    }

    /// Whether no env reported anything.
    pub fn is_empty(&self) -> bool {
        self.columns.iter().all(|c| !c.mask.contains(&true))
    }

    /// Record env `i`'s info.
    pub fn add(&mut self, n: usize, i: usize, info: &Info) -> Result<()> {
        for (key, value) in info.iter() {
            let col = match self.columns.iter().position(|c| c.key == key) {
                Some(j) => &mut self.columns[j],
                None => {
                    let values = match value {
                        InfoValue::Bool(_) => Column::Bool(vec![false; n]),
                        InfoValue::Int(_) => Column::Int(vec![0; n]),
                        InfoValue::Float(_) => Column::Float(vec![0.0; n]),
                        InfoValue::Text(_) => Column::Text(vec![String::new(); n]),
                        InfoValue::Floats(v) => Column::Floats { width: v.len(), data: vec![0.0; n * v.len()] },
                    };
                    self.columns.push(InfoColumn { key: key.to_string(), values, mask: vec![false; n] });
                    self.columns.last_mut().expect("just pushed")
                }
            };
            if let (Column::Int(ints), InfoValue::Float(_)) = (&col.values, value) {
                col.values = Column::Float(ints.iter().map(|&x| x as f64).collect());
            }
            match (&mut col.values, value) {
                (Column::Bool(v), InfoValue::Bool(x)) => v[i] = *x,
                (Column::Int(v), InfoValue::Int(x)) => v[i] = *x,
                (Column::Float(v), InfoValue::Float(x)) => v[i] = *x,
                (Column::Float(v), InfoValue::Int(x)) => v[i] = *x as f64,
                (Column::Text(v), InfoValue::Text(x)) => v[i].clone_from(x),
                (Column::Floats { width, data }, InfoValue::Floats(x)) if x.len() == *width => {
                    data[i * *width..(i + 1) * *width].copy_from_slice(x)
                }
                _ => {
                    return Err(Error::invalid(
                        "info",
                        format!("key '{key}' changes type between envs of one batch ({value:?})"),
                    ))
                }
            }
            col.mask[i] = true;
        }
        Ok(())
    }
}

/// A batch of envs stepped by one call.
pub trait Batch: Send + Sync {
    /// The env id.
    fn id(&self) -> &str;
    /// Number of envs.
    fn num_envs(&self) -> usize;
    /// The observation space of one env.
    fn single_observation_space(&self) -> Space;
    /// The action space of one env.
    fn single_action_space(&self) -> Space;
    /// The autoreset mode.
    fn autoreset(&self) -> Autoreset;
    /// Whether rewards are `float32` (else `float64`).
    fn f32_rewards(&self) -> bool;
    /// Whether this is a hand-vectorised batch (else scalar envs in a loop).
    fn native(&self) -> bool;
    /// Reset every env and write the first observations.
    fn reset(&mut self, seeds: &Seeds, obs: ObsMut<'_>) -> Result<()>;
    /// Step every env (autoresetting as [`Batch::autoreset`] says) and write the results.
    fn step(&mut self, actions: Actions<'_>, out: Out<'_>) -> Result<()>;
    /// Infos of the last call (`None`: the envs never report any).
    fn infos(&self) -> Option<&VecInfos>;
    /// `SAME_STEP`: which envs ended at the last call, and the infos of their last steps.
    fn finals(&self) -> Option<(&[bool], &VecInfos)>;
}

/// A hand-vectorised classic-control batch of rlox-envs.
pub struct Native<B: BatchEnv> {
    env: B,
    observation_space: Space,
    action_space: Space,
    f32_rewards: bool,
    /// `SAME_STEP`: which envs ended at the last call (read back from the flags).
    ended: Vec<bool>,
    no_infos: VecInfos,
}

impl<B> Native<B>
where
    B: BatchEnv + rlox_core::vec_env::VecEnv,
{
    /// Wrap `env` (already configured: seeding, time limit) in `mode`, with `float32` rewards or not.
    pub fn new(mut env: B, mode: Autoreset, f32_rewards: bool) -> Self {
        env.set_autoreset_mode(match mode {
            Autoreset::NextStep => AutoresetMode::NextStep,
            Autoreset::SameStep => AutoresetMode::SameStep,
        });
        let n = BatchEnv::num_envs(&env);
        Native {
            observation_space: env.single_observation_space(),
            action_space: env.single_action_space(),
            env,
            f32_rewards,
            ended: vec![false; n],
            no_infos: VecInfos::default(),
        }
    }
}

/// Reading Python's flat actions as a [`BatchEnv`]'s action slice.
pub trait NativeAction: Copy {
    /// The actions as this batch's slice, or an error naming the expected kind.
    fn slice<'a>(actions: Actions<'a>, env: &str, space: &Space) -> Result<&'a [Self]>;
}

impl NativeAction for i64 {
    fn slice<'a>(actions: Actions<'a>, env: &str, space: &Space) -> Result<&'a [i64]> {
        match actions {
            Actions::Index(a) => Ok(a),
            Actions::Vector { .. } => Err(Error::invalid("actions", format!("{env} takes actions of {space}"))),
        }
    }
}

impl NativeAction for f32 {
    fn slice<'a>(actions: Actions<'a>, env: &str, space: &Space) -> Result<&'a [f32]> {
        match actions {
            Actions::Vector { data, dim: 1 } => Ok(data),
            _ => Err(Error::invalid("actions", format!("{env} takes actions of {space}"))),
        }
    }
}

impl<B> Batch for Native<B>
where
    B: BatchEnv + rlox_core::vec_env::VecEnv + Send + Sync,
    <B as BatchEnv>::Action: NativeAction,
{
    fn id(&self) -> &str {
        BatchEnv::id(&self.env)
    }
    fn num_envs(&self) -> usize {
        BatchEnv::num_envs(&self.env)
    }
    fn single_observation_space(&self) -> Space {
        self.observation_space.clone()
    }
    fn single_action_space(&self) -> Space {
        self.action_space.clone()
    }
    fn autoreset(&self) -> Autoreset {
        match self.env.autoreset_mode() {
            AutoresetMode::NextStep => Autoreset::NextStep,
            AutoresetMode::SameStep => Autoreset::SameStep,
        }
    }
    fn f32_rewards(&self) -> bool {
        self.f32_rewards
    }
    fn native(&self) -> bool {
        true
    }
    fn reset(&mut self, seeds: &Seeds, obs: ObsMut<'_>) -> Result<()> {
        let base = match seeds {
            Seeds::None => None,
            Seeds::Base(s) => Some(*s),
            Seeds::PerEnv(list) => consecutive(list).ok_or_else(|| {
                Error::invalid(
                    "seed",
                    format!(
                        "the batched {} takes one seed (env i gets seed + i) or None; for any other per-env \
                         seeds use vectorization_mode='sync'",
                        BatchEnv::id(&self.env)
                    ),
                )
            })?,
        };
        let ObsMut::Vector(obs) = obs else {
            return Err(Error::invalid("observation buffer", "classic-control observations are float32"));
        };
        self.ended.fill(false);
        self.env.reset_into(base, obs)
    }
    #[inline]
    fn step(&mut self, actions: Actions<'_>, out: Out<'_>) -> Result<()> {
        let acts = <B as BatchEnv>::Action::slice(actions, BatchEnv::id(&self.env), &self.action_space)?;
        let ObsMut::Vector(obs) = out.obs else {
            return Err(Error::invalid("observation buffer", "classic-control observations are float32"));
        };
        let final_obs = match out.final_obs {
            ObsMut::Vector(f) => f,
            ObsMut::Index(_) => &mut [],
        };
        let (terminated, truncated) = (out.terminated, out.truncated);
        match out.rewards {
            RewardsMut::F64(rewards) => self.env.step_into(
                acts,
                StepBuffers { obs, rewards, terminated: &mut *terminated, truncated: &mut *truncated, final_obs },
            )?,
            RewardsMut::F32(rewards) => self.env.step_into(
                acts,
                StepBuffers { obs, rewards, terminated: &mut *terminated, truncated: &mut *truncated, final_obs },
            )?,
        }
        if self.env.autoreset_mode() == AutoresetMode::SameStep {
            for (e, (t, u)) in self.ended.iter_mut().zip(terminated.iter().zip(truncated.iter())) {
                *e = *t || *u;
            }
        }
        Ok(())
    }
    fn infos(&self) -> Option<&VecInfos> {
        None
    }
    fn finals(&self) -> Option<(&[bool], &VecInfos)> {
        (self.env.autoreset_mode() == AutoresetMode::SameStep).then_some((&self.ended, &self.no_infos))
    }
}

/// `Some(Some(s))` if the seeds are `s, s + 1, ...`, `Some(None)` if all are `None`.
fn consecutive(list: &[Option<u64>]) -> Option<Option<u64>> {
    if list.iter().all(Option::is_none) {
        return Some(None);
    }
    let s = list.first().copied().flatten()?;
    list.iter().enumerate().all(|(i, x)| *x == s.checked_add(i as u64)).then_some(Some(s))
}

/// N scalar envs stepped in a loop (Gymnasium's `SyncVectorEnv`).
pub struct SyncBatch {
    id: String,
    envs: Vec<Box<dyn Core>>,
    mode: Autoreset,
    observation_space: Space,
    action_space: Space,
    dim: usize,
    needs_reset: Vec<bool>,
    started: bool,
    infos: VecInfos,
    ended: Vec<bool>,
    final_infos: VecInfos,
}

impl SyncBatch {
    /// A batch of `envs` (at least one, all of the same spaces).
    pub fn new(envs: Vec<Box<dyn Core>>, mode: Autoreset) -> Result<Self> {
        let first = envs.first().ok_or_else(|| Error::invalid("num_envs", "a vector env needs at least one env"))?;
        let n = envs.len();
        let observation_space = first.observation_space();
        Ok(SyncBatch {
            id: first.id().to_string(),
            action_space: first.action_space(),
            dim: observation_space.flat_dim(),
            observation_space,
            mode,
            needs_reset: vec![false; n],
            started: false,
            infos: VecInfos::default(),
            ended: vec![false; n],
            final_infos: VecInfos::default(),
            envs,
        })
    }

    /// Check every action before any env moves.
    fn check(&self, actions: &Actions<'_>) -> Result<()> {
        let n = self.envs.len();
        match (*actions, &self.action_space) {
            (Actions::Index(a), Space::Discrete(d)) if a.len() == n => {
                if let Some(&bad) = a.iter().find(|&&x| !d.contains(x)) {
                    return Err(crate::core::invalid_action(&self.id, ActionIn::Index(bad), &self.action_space));
                }
            }
            (Actions::Vector { data, dim }, Space::Box(b)) if dim == b.dim() && data.len() == n * dim => {
                if let Some(i) = data.iter().position(|x| !x.is_finite()) {
                    let row = i / dim;
                    return Err(crate::core::invalid_action(
                        &self.id,
                        ActionIn::Vector(&data[row * dim..(row + 1) * dim]),
                        &self.action_space,
                    ));
                }
            }
            _ => {
                return Err(Error::invalid(
                    "actions",
                    format!("{} takes one action of {} per env ({n} envs)", self.id, self.action_space),
                ))
            }
        }
        Ok(())
    }
}

impl Batch for SyncBatch {
    fn id(&self) -> &str {
        &self.id
    }
    fn num_envs(&self) -> usize {
        self.envs.len()
    }
    fn single_observation_space(&self) -> Space {
        self.observation_space.clone()
    }
    fn single_action_space(&self) -> Space {
        self.action_space.clone()
    }
    fn autoreset(&self) -> Autoreset {
        self.mode
    }
    fn f32_rewards(&self) -> bool {
        false
    }
    fn native(&self) -> bool {
        false
    }

    fn reset(&mut self, seeds: &Seeds, mut obs: ObsMut<'_>) -> Result<()> {
        let n = self.envs.len();
        if let Seeds::PerEnv(list) = seeds {
            if list.len() != n {
                return Err(Error::invalid("seed", format!("got {} seeds for {n} envs", list.len())));
            }
        }
        self.infos.clear();
        self.final_infos.clear();
        self.ended.fill(false);
        for i in 0..n {
            let seed = match seeds {
                Seeds::None => None,
                Seeds::Base(s) => {
                    Some(s.checked_add(i as u64).ok_or_else(|| Error::invalid("seed", "seed + i overflows"))?)
                }
                Seeds::PerEnv(list) => list[i],
            };
            let info = self.envs[i].reset(seed, obs.slot(i, self.dim))?;
            self.infos.add(n, i, &info)?;
        }
        self.needs_reset.fill(false);
        self.started = true;
        Ok(())
    }

    fn step(&mut self, actions: Actions<'_>, mut out: Out<'_>) -> Result<()> {
        if !self.started {
            return Err(Error::NeedsReset { env: self.id.clone(), when: "before reset()" });
        }
        self.check(&actions)?;
        let n = self.envs.len();
        self.infos.clear();
        self.final_infos.clear();
        self.ended.fill(false);
        for i in 0..n {
            let reward;
            if self.needs_reset[i] {
                let info = self.envs[i].reset(None, out.obs.slot(i, self.dim))?;
                self.infos.add(n, i, &info)?;
                reward = 0.0;
                out.terminated[i] = false;
                out.truncated[i] = false;
                self.needs_reset[i] = false;
            } else {
                let step = self.envs[i].step(actions.get(i), out.obs.slot(i, self.dim))?;
                reward = step.reward;
                out.terminated[i] = step.terminated;
                out.truncated[i] = step.truncated;
                let done = step.terminated || step.truncated;
                match self.mode {
                    Autoreset::NextStep => {
                        self.infos.add(n, i, &step.info)?;
                        self.needs_reset[i] = done;
                    }
                    Autoreset::SameStep if done => {
                        out.obs.copy_row_to(&mut out.final_obs, i, self.dim);
                        self.ended[i] = true;
                        self.final_infos.add(n, i, &step.info)?;
                        let info = self.envs[i].reset(None, out.obs.slot(i, self.dim))?;
                        self.infos.add(n, i, &info)?;
                    }
                    Autoreset::SameStep => self.infos.add(n, i, &step.info)?,
                }
            }
            match &mut out.rewards {
                RewardsMut::F64(r) => r[i] = reward,
                RewardsMut::F32(r) => r[i] = reward as f32,
            }
        }
        Ok(())
    }

    fn infos(&self) -> Option<&VecInfos> {
        Some(&self.infos)
    }
    fn finals(&self) -> Option<(&[bool], &VecInfos)> {
        (self.mode == Autoreset::SameStep).then_some((&self.ended, &self.final_infos))
    }
}
