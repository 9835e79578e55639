//! Batches of envs stepped by one call: what `rlox.make_vec` and the SB3 adapter drive.
//!
//! Two implementations of [`Batch`]:
//!
//! * [`Fast`]: a hand-vectorised rlox batch ([`VecEnv`], e.g. `CartPoleVec`): one array per state
//!   component, the time limit and Gymnasium's `NEXT_STEP` autoreset inside its loop. Used by
//!   `rlox.make_vec` for the classic-control envs.
//! * [`SyncBatch`]: N scalar envs ([`Core`]) stepped in a loop, like Gymnasium's `SyncVectorEnv`:
//!   every env, both autoreset modes (`NEXT_STEP` and `SAME_STEP`, the latter with `final_obs` and
//!   `final_info`), per-env seeds, and the envs' infos in Gymnasium's vector layout. Used for the
//!   toy-text envs, for `SAME_STEP` and by the SB3 adapter.
//!
//! Actions are validated for the whole batch before any env moves, so a bad action leaves every
//! env where it was.

use crate::core::{ActionIn, Core, ObsOut};
use rlox_core::env::{Info, InfoValue};
use rlox_core::spaces::Space;
use rlox_core::vec_env::VecEnv;
use rlox_core::{Error, Result};

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

/// Observations of a batch, env-major.
#[derive(Debug, Clone, PartialEq)]
pub enum ObsBuf {
    /// `Discrete` observations.
    Index(Vec<i64>),
    /// `Box` observations, `num_envs * dim`.
    Vector(Vec<f32>),
}

impl ObsBuf {
    fn for_space(space: &Space, n: usize) -> Self {
        match space {
            Space::Discrete(_) => ObsBuf::Index(vec![0; n]),
            other => ObsBuf::Vector(vec![0.0; n * other.flat_dim()]),
        }
    }

    fn slot(&mut self, i: usize, dim: usize) -> ObsOut<'_> {
        match self {
            ObsBuf::Index(v) => ObsOut::Index(&mut v[i]),
            ObsBuf::Vector(v) => ObsOut::Vector(&mut v[i * dim..(i + 1) * dim]),
        }
    }

    fn copy_row(&mut self, from: &ObsBuf, i: usize, dim: usize) {
        match (self, from) {
            (ObsBuf::Index(d), ObsBuf::Index(s)) => d[i] = s[i],
            (ObsBuf::Vector(d), ObsBuf::Vector(s)) => {
                d[i * dim..(i + 1) * dim].copy_from_slice(&s[i * dim..(i + 1) * dim])
            }
            _ => {}
        }
    }
}

/// A borrowed view of a batch's observations.
#[derive(Debug, Clone, Copy)]
pub enum ObsView<'a> {
    /// `Discrete` observations.
    Index(&'a [i64]),
    /// `Box` observations, `num_envs * dim`.
    Vector(&'a [f32]),
}

impl ObsBuf {
    /// The view of this buffer.
    pub fn view(&self) -> ObsView<'_> {
        match self {
            ObsBuf::Index(v) => ObsView::Index(v),
            ObsBuf::Vector(v) => ObsView::Vector(v),
        }
    }
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

/// What `SAME_STEP` keeps of the episodes that ended at the last call.
#[derive(Debug, Clone, PartialEq)]
pub struct Finals {
    /// Their last observations (rows of finished envs only are meaningful).
    pub obs: ObsBuf,
    /// Which envs finished.
    pub mask: Vec<bool>,
    /// The infos of their last steps.
    pub infos: VecInfos,
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
    /// Reset every env.
    fn reset(&mut self, seeds: &Seeds) -> Result<()>;
    /// Step every env (autoresetting as [`Batch::autoreset`] says).
    fn step(&mut self, actions: Actions<'_>) -> Result<()>;
    /// Observations after the last call.
    fn obs(&self) -> ObsView<'_>;
    /// Rewards of the last call.
    fn rewards(&self) -> &[f64];
    /// Terminated flags of the last call.
    fn terminated(&self) -> &[bool];
    /// Truncated flags of the last call.
    fn truncated(&self) -> &[bool];
    /// Infos of the last call (`None`: the envs never report any).
    fn infos(&self) -> Option<&VecInfos>;
    /// `SAME_STEP` only: the episodes that ended at the last call.
    fn finals(&self) -> Option<&Finals>;
}

/// Filling a hand-vectorised batch's action slice from Python's actions.
pub trait BatchAction: Sized + Clone + Send + Sync {
    /// Overwrite `dst` with one action per env (reusing its allocations).
    fn fill(dst: &mut Vec<Self>, src: Actions<'_>, n: usize, env: &str, space: &Space) -> Result<()>;
}

impl BatchAction for usize {
    #[inline]
    fn fill(dst: &mut Vec<Self>, src: Actions<'_>, n: usize, env: &str, space: &Space) -> Result<()> {
        match src {
            Actions::Index(a) if a.len() == n => {
                dst.clear();
                for &x in a {
                    if x < 0 {
                        return Err(crate::core::invalid_action(env, ActionIn::Index(x), space));
                    }
                    dst.push(x as usize);
                }
                Ok(())
            }
            _ => Err(Error::invalid("actions", format!("{env} takes {n} discrete actions"))),
        }
    }
}

impl BatchAction for Vec<f32> {
    #[inline]
    fn fill(dst: &mut Vec<Self>, src: Actions<'_>, n: usize, env: &str, _space: &Space) -> Result<()> {
        match src {
            Actions::Vector { data, dim } if data.len() == n * dim => {
                dst.resize_with(n, || vec![0.0; dim]);
                for (i, a) in dst.iter_mut().enumerate() {
                    a.resize(dim, 0.0);
                    a.copy_from_slice(&data[i * dim..(i + 1) * dim]);
                }
                Ok(())
            }
            _ => Err(Error::invalid("actions", format!("{env} takes {n} continuous actions"))),
        }
    }
}

/// A hand-vectorised rlox batch (`NEXT_STEP` only).
pub struct Fast<V: VecEnv> {
    id: String,
    env: V,
    actions: Vec<V::Action>,
    action_space: Space,
}

impl<V: VecEnv> Fast<V>
where
    V::Action: BatchAction,
{
    /// Wrap `env`, an `id` batch.
    pub fn new(id: &str, env: V) -> Self {
        let n = env.num_envs();
        Fast { id: id.to_string(), action_space: env.single_action_space(), env, actions: Vec::with_capacity(n) }
    }
}

impl<V> Batch for Fast<V>
where
    V: VecEnv + Send + Sync,
    V::Action: BatchAction,
{
    fn id(&self) -> &str {
        &self.id
    }
    fn num_envs(&self) -> usize {
        self.env.num_envs()
    }
    fn single_observation_space(&self) -> Space {
        self.env.single_observation_space()
    }
    fn single_action_space(&self) -> Space {
        self.action_space.clone()
    }
    fn autoreset(&self) -> Autoreset {
        Autoreset::NextStep
    }
    fn reset(&mut self, seeds: &Seeds) -> Result<()> {
        let base = match seeds {
            Seeds::None => None,
            Seeds::Base(s) => Some(*s),
            Seeds::PerEnv(list) => consecutive(list).ok_or_else(|| {
                Error::invalid(
                    "seed",
                    format!(
                        "the batched {} takes one seed (env i gets seed + i) or None; for other per-env seeds \
                         use vectorization_mode='sync'",
                        self.id
                    ),
                )
            })?,
        };
        self.env.reset(base)
    }
    #[inline]
    fn step(&mut self, actions: Actions<'_>) -> Result<()> {
        let n = self.env.num_envs();
        V::Action::fill(&mut self.actions, actions, n, &self.id, &self.action_space)?;
        self.env.step(&self.actions)
    }
    fn obs(&self) -> ObsView<'_> {
        ObsView::Vector(self.env.observations())
    }
    fn rewards(&self) -> &[f64] {
        self.env.rewards()
    }
    fn terminated(&self) -> &[bool] {
        self.env.terminated()
    }
    fn truncated(&self) -> &[bool] {
        self.env.truncated()
    }
    fn infos(&self) -> Option<&VecInfos> {
        None
    }
    fn finals(&self) -> Option<&Finals> {
        None
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
    obs: ObsBuf,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    needs_reset: Vec<bool>,
    started: bool,
    infos: VecInfos,
    finals: Finals,
}

impl SyncBatch {
    /// A batch of `envs` (at least one, all of the same spaces).
    pub fn new(envs: Vec<Box<dyn Core>>, mode: Autoreset) -> Result<Self> {
        let first = envs.first().ok_or_else(|| Error::invalid("num_envs", "a vector env needs at least one env"))?;
        let id = first.id().to_string();
        let observation_space = first.observation_space();
        let action_space = first.action_space();
        let n = envs.len();
        let dim = observation_space.flat_dim();
        let obs = ObsBuf::for_space(&observation_space, n);
        Ok(SyncBatch {
            id,
            mode,
            dim,
            finals: Finals { obs: obs.clone(), mask: vec![false; n], infos: VecInfos::default() },
            obs,
            observation_space,
            action_space,
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            needs_reset: vec![false; n],
            started: false,
            infos: VecInfos::default(),
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

    fn reset(&mut self, seeds: &Seeds) -> Result<()> {
        let n = self.envs.len();
        if let Seeds::PerEnv(list) = seeds {
            if list.len() != n {
                return Err(Error::invalid("seed", format!("got {} seeds for {n} envs", list.len())));
            }
        }
        self.infos.clear();
        self.finals.mask.fill(false);
        self.finals.infos.clear();
        for i in 0..n {
            let seed = match seeds {
                Seeds::None => None,
                Seeds::Base(s) => {
                    Some(s.checked_add(i as u64).ok_or_else(|| Error::invalid("seed", "seed + i overflows"))?)
                }
                Seeds::PerEnv(list) => list[i],
            };
            let info = self.envs[i].reset(seed, self.obs.slot(i, self.dim))?;
            self.infos.add(n, i, &info)?;
        }
        self.rewards.fill(0.0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.needs_reset.fill(false);
        self.started = true;
        Ok(())
    }

    fn step(&mut self, actions: Actions<'_>) -> Result<()> {
        if !self.started {
            return Err(Error::NeedsReset { env: self.id.clone(), when: "before reset()" });
        }
        self.check(&actions)?;
        let n = self.envs.len();
        self.infos.clear();
        if self.mode == Autoreset::SameStep {
            self.finals.mask.fill(false);
            self.finals.infos.clear();
        }
        for i in 0..n {
            if self.needs_reset[i] {
                let info = self.envs[i].reset(None, self.obs.slot(i, self.dim))?;
                self.infos.add(n, i, &info)?;
                self.rewards[i] = 0.0;
                self.terminated[i] = false;
                self.truncated[i] = false;
                self.needs_reset[i] = false;
                continue;
            }
            let out = self.envs[i].step(actions.get(i), self.obs.slot(i, self.dim))?;
            self.rewards[i] = out.reward;
            self.terminated[i] = out.terminated;
            self.truncated[i] = out.truncated;
            let done = out.terminated || out.truncated;
            match self.mode {
                Autoreset::NextStep => {
                    self.infos.add(n, i, &out.info)?;
                    self.needs_reset[i] = done;
                }
                Autoreset::SameStep if done => {
                    self.finals.obs.copy_row(&self.obs, i, self.dim);
                    self.finals.mask[i] = true;
                    self.finals.infos.add(n, i, &out.info)?;
                    let info = self.envs[i].reset(None, self.obs.slot(i, self.dim))?;
                    self.infos.add(n, i, &info)?;
                }
                Autoreset::SameStep => self.infos.add(n, i, &out.info)?,
            }
        }
        Ok(())
    }

    fn obs(&self) -> ObsView<'_> {
        self.obs.view()
    }
    fn rewards(&self) -> &[f64] {
        &self.rewards
    }
    fn terminated(&self) -> &[bool] {
        &self.terminated
    }
    fn truncated(&self) -> &[bool] {
        &self.truncated
    }
    fn infos(&self) -> Option<&VecInfos> {
        Some(&self.infos)
    }
    fn finals(&self) -> Option<&Finals> {
        (self.mode == Autoreset::SameStep).then_some(&self.finals)
    }
}
