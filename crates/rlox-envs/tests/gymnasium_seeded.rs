//! rlox's Gymnasium-compatible envs against Gymnasium 1.4 itself, from the same seeds, with no state
//! injected (`fixtures/gym_seeded/*.json`, written by `tools/gymnasium_seeded_traces.py`).
//!
//! For every env (the five classic-control envs, FrozenLake-v1 and 8x8, CliffWalking-v1 and its
//! slippery variant, Taxi-v4 plain and rainy with a fickle passenger):
//!
//! * `reset(Some(s))` gives Gymnasium's `reset(seed=s)` observation for ten seeds (up to 2^80 + 3,
//!   through [`NpRandom`]), and the `reset(None)` after it gives Gymnasium's next `reset()`;
//! * a single env replays at least 1,000 recorded actions from one seed (reset with `reset(None)`
//!   after every episode end) and every episode equals Gymnasium's: first and last observation,
//!   length, return, `terminated`/`truncated`, and a hash of every step;
//! * a batch (classic control: the `*Vec` batches through the caller-buffer API [`BatchEnv`];
//!   toy text: [`SyncVecEnv`]) of four envs reset with one seed equals `gymnasium.make_vec(id, 4)`
//!   call by call (a hash of every call), CartPole with both vectorisations (NumPy's
//!   `CartPoleVectorEnv`, one generator, and `SyncVectorEnv`, one generator per env), and CartPole and
//!   Pendulum also with `SAME_STEP` autoreset.
//!
//! Every comparison is bit for bit: observations as `f32` bits (where Gymnasium computes in `f64`
//! and rounds to `f32`, as well as where it computes in `f32`), rewards and returns as `f64` bits.

use rlox_core::env::{FlatObs, NpRandom};
use rlox_core::seeding::np_random_from_int_limbs;
use rlox_core::vec_env::{SyncVecEnv, VecEnv};
use rlox_core::Env;
use rlox_envs::classic_control::*;
use rlox_envs::toy_text::{
    cliff_walking_slippery_v1, cliff_walking_v1, frozen_lake_8x8_v1, frozen_lake_v1, generate_random_map, taxi_v4,
    taxi_v4_with, TaxiConfig,
};
use serde_json::Value;
use std::path::Path;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a 64, as the fixture script computes it.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(FNV_OFFSET)
    }
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ b as u64).wrapping_mul(FNV_PRIME);
        }
    }
    fn obs(&mut self, obs: &Obs) {
        match obs {
            Obs::Classic(v) => v.iter().for_each(|x| self.bytes(&x.to_le_bytes())),
            Obs::Toy(s) => self.bytes(&(*s as i64).to_le_bytes()),
        }
    }
    fn step(&mut self, obs: &Obs, reward: f64, terminated: bool, truncated: bool) {
        self.obs(obs);
        self.bytes(&reward.to_le_bytes());
        self.bytes(&[terminated as u8, truncated as u8]);
    }
    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// An observation as the fixtures store it.
#[derive(Debug, Clone, PartialEq)]
enum Obs {
    /// `f32` bit patterns.
    Classic(Vec<f32>),
    /// A discrete state.
    Toy(usize),
}

impl Obs {
    fn from_json(v: &Value) -> Obs {
        match v {
            Value::Array(xs) => Obs::Classic(
                xs.iter().map(|x| f32::from_bits(u32::from_str_radix(x.as_str().unwrap(), 16).unwrap())).collect(),
            ),
            n => Obs::Toy(n.as_u64().unwrap() as usize),
        }
    }

    /// Bit-level equality (`-0.0` differs from `0.0`, as in the hash).
    fn same_bits(&self, other: &Obs) -> bool {
        match (self, other) {
            (Obs::Classic(a), Obs::Classic(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (a, b) => a == b,
        }
    }
}

/// How an env's observation becomes an [`Obs`].
trait ToObs {
    fn to_obs(&self) -> Obs;
}

impl<const N: usize> ToObs for [f32; N] {
    fn to_obs(&self) -> Obs {
        Obs::Classic(self.to_vec())
    }
}

impl ToObs for usize {
    fn to_obs(&self) -> Obs {
        Obs::Toy(*self)
    }
}

/// How the fixture's action string becomes an env's actions.
trait ParseActions: Sized {
    fn parse(text: &str) -> Vec<Self>;
}

impl ParseActions for usize {
    fn parse(text: &str) -> Vec<usize> {
        text.bytes().map(|b| (b - b'0') as usize).collect()
    }
}

impl ParseActions for Vec<f32> {
    fn parse(text: &str) -> Vec<Vec<f32>> {
        f32s(text).into_iter().map(|a| vec![a]).collect()
    }
}

fn f32s(text: &str) -> Vec<f32> {
    text.as_bytes()
        .chunks(8)
        .map(|c| f32::from_bits(u32::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap()))
        .collect()
}

fn digits(text: &str) -> Vec<i64> {
    text.bytes().map(|b| (b - b'0') as i64).collect()
}

fn f64_hex(v: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(v.as_str().unwrap(), 16).unwrap())
}

fn load(stem: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gym_seeded").join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("fixture json");
    assert_eq!(doc["gymnasium"], "1.4.0");
    doc
}

/// Reset `env` with a fixture seed: a `u64` directly, a wider one by replacing the generator
/// (Gymnasium's `np_random(seed)` of a Python integer) and resetting without a seed.
fn reset_with<E: Env + NpRandom>(env: &mut E, seed: &str) -> E::Obs {
    match seed.parse::<u64>() {
        Ok(s) => env.reset(Some(s)).unwrap().0,
        Err(_) => {
            let wide: u128 = seed.parse().expect("seeds fit in 128 bits");
            *env.np_random_mut() = np_random_from_int_limbs(&[wide as u64, (wide >> 64) as u64]).0;
            env.reset(None).unwrap().0
        }
    }
}

/// `reset(seed=s)` and the `reset()` after it, for every recorded seed.
fn check_resets<E>(doc: &Value, mut make: impl FnMut() -> E)
where
    E: Env + NpRandom,
    E::Obs: ToObs,
{
    let id = doc["id"].as_str().unwrap();
    let mut env = make();
    for r in doc["reset_obs"].as_array().unwrap() {
        let seed = r["seed"].as_str().unwrap();
        let first = reset_with(&mut env, seed).to_obs();
        assert!(first.same_bits(&Obs::from_json(&r["obs"])), "{id} reset(seed={seed}): {first:?} vs {}", r["obs"]);
        let next = env.reset(None).unwrap().0.to_obs();
        assert!(next.same_bits(&Obs::from_json(&r["next_obs"])), "{id} seed={seed}, then reset(): {next:?}");
        // A fresh env seeded the same way agrees too (nothing else leaks into the stream).
        assert!(reset_with(&mut make(), seed).to_obs().same_bits(&first), "{id} seed={seed}: fresh env");
    }
}

/// The single-env trace: episodes as Gymnasium recorded them.
fn check_single<E>(doc: &Value, mut env: E)
where
    E: Env + NpRandom,
    E::Obs: ToObs,
    E::Action: ParseActions,
{
    let id = doc["id"].as_str().unwrap();
    let single = &doc["single"];
    let actions = E::Action::parse(single["actions"].as_str().unwrap());
    assert_eq!(actions.len() as u64, single["steps"].as_u64().unwrap());
    assert!(actions.len() >= 1000, "at least 1,000 steps");
    let want = single["episodes"].as_array().unwrap();
    let mut obs = env.reset(Some(single["seed"].as_u64().unwrap())).unwrap().0.to_obs();
    let mut episode = 0;
    let (mut len, mut ret, mut hash) = (0u64, 0.0f64, Fnv::new());
    let mut ended = 0;
    let check = |episode: usize, reset_obs: &Obs, last: &Obs, len: u64, ret: f64, hash: &Fnv, flags: (bool, bool)| {
        let w = &want[episode];
        let ctx = format!("{id} single-env episode {episode}");
        assert!(reset_obs.same_bits(&Obs::from_json(&w["reset_obs"])), "{ctx}: reset obs {reset_obs:?}");
        assert_eq!(len, w["len"].as_u64().unwrap(), "{ctx}: length");
        assert!(last.same_bits(&Obs::from_json(&w["last_obs"])), "{ctx}: last obs {last:?} vs {}", w["last_obs"]);
        assert_eq!(ret.to_bits(), f64_hex(&w["ret"]).to_bits(), "{ctx}: return {ret}");
        assert_eq!(flags, (w["terminated"].as_bool().unwrap(), w["truncated"].as_bool().unwrap()), "{ctx}: flags");
        assert_eq!(hash.hex(), w["hash"].as_str().unwrap(), "{ctx}: step hash");
    };
    let mut reset_obs = obs.clone();
    let mut flags = (false, false);
    for a in &actions {
        let s = env.step(a).unwrap();
        obs = s.obs.to_obs();
        len += 1;
        ret += s.reward;
        hash.step(&obs, s.reward, s.terminated, s.truncated);
        flags = (s.terminated, s.truncated);
        if s.done() {
            check(episode, &reset_obs, &obs, len, ret, &hash, flags);
            ended += 1;
            episode += 1;
            reset_obs = env.reset(None).unwrap().0.to_obs();
            (len, ret, hash) = (0, 0.0, Fnv::new());
        }
    }
    if len > 0 {
        check(episode, &reset_obs, &obs, len, ret, &hash, flags);
        episode += 1;
    }
    assert_eq!(episode, want.len(), "{id}: number of episodes");
    assert!(ended >= 1, "{id}: the trace ends at least one episode");
}

/// One classic-control batch trace through the caller-buffer API.
fn check_batch<B, R>(doc: &Value, trace: &Value, mut batch: B, actions: Vec<B::Action>)
where
    B: BatchEnv,
    R: Reward + Default + Into<f64>,
{
    let id = doc["id"].as_str().unwrap();
    let mode = trace["mode"].as_str().unwrap();
    let n = trace["num_envs"].as_u64().unwrap() as usize;
    let d = batch.obs_dim();
    assert_eq!(batch.num_envs(), n);
    let mut obs = vec![0.0f32; n * d];
    let mut rewards = vec![R::default(); n];
    let (mut terminated, mut truncated) = (vec![false; n], vec![false; n]);
    let mut final_obs = vec![f32::NAN; n * d];
    batch.reset_into(Some(trace["seed"].as_u64().unwrap()), &mut obs).unwrap();
    let row = |obs: &[f32], i: usize| Obs::Classic(obs[i * d..(i + 1) * d].to_vec());
    for (i, w) in trace["reset_obs"].as_array().unwrap().iter().enumerate() {
        assert!(row(&obs, i).same_bits(&Obs::from_json(w)), "{id} {mode}: reset obs of env {i}: {:?}", row(&obs, i));
    }
    let hashes = trace["hashes"].as_array().unwrap();
    let mut ends = 0;
    for (c, want) in hashes.iter().enumerate() {
        let out = StepBuffers {
            obs: &mut obs,
            rewards: &mut rewards,
            terminated: &mut terminated,
            truncated: &mut truncated,
            final_obs: &mut final_obs,
        };
        batch.step_into(&actions[c * n..(c + 1) * n], out).unwrap();
        let mut h = Fnv::new();
        for i in 0..n {
            h.step(&row(&obs, i), rewards[i].into(), terminated[i], truncated[i]);
        }
        if mode == "same_step" {
            for i in 0..n {
                if terminated[i] || truncated[i] {
                    h.obs(&row(&final_obs, i));
                }
            }
        }
        ends += (0..n).filter(|&i| terminated[i] || truncated[i]).count();
        assert_eq!(
            h.hex(),
            want.as_str().unwrap(),
            "{id} {mode} batch call {c}: obs {obs:?} terminated {terminated:?} truncated {truncated:?}"
        );
    }
    for (i, w) in trace["last_obs"].as_array().unwrap().iter().enumerate() {
        assert!(row(&obs, i).same_bits(&Obs::from_json(w)), "{id} {mode}: last obs of env {i}");
    }
    assert_eq!(ends as u64, trace["episode_ends"].as_u64().unwrap(), "{id} {mode}: episode ends");
}

/// One toy-text vector trace through [`SyncVecEnv`] (Gymnasium's `SyncVectorEnv`).
fn check_sync_vec<E>(doc: &Value, trace: &Value, envs: Vec<E>)
where
    E: Env<Obs = usize, Action = usize>,
{
    let id = doc["id"].as_str().unwrap();
    let n = trace["num_envs"].as_u64().unwrap() as usize;
    let actions = usize::parse(trace["actions"].as_str().unwrap());
    let mut v = SyncVecEnv::new(envs).unwrap();
    v.reset(Some(trace["seed"].as_u64().unwrap())).unwrap();
    let row = |v: &SyncVecEnv<E>, i: usize| Obs::Toy(v.observations()[i] as usize);
    for (i, w) in trace["reset_obs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(row(&v, i), Obs::from_json(w), "{id}: reset obs of env {i}");
    }
    let mut ends = 0;
    for (c, want) in trace["hashes"].as_array().unwrap().iter().enumerate() {
        v.step(&actions[c * n..(c + 1) * n]).unwrap();
        let mut h = Fnv::new();
        for i in 0..n {
            h.step(&row(&v, i), v.rewards()[i], v.terminated()[i], v.truncated()[i]);
            ends += (v.terminated()[i] || v.truncated()[i]) as u64;
        }
        assert_eq!(h.hex(), want.as_str().unwrap(), "{id} vector call {c}: obs {:?}", v.observations());
    }
    assert_eq!(ends, trace["episode_ends"].as_u64().unwrap(), "{id}: episode ends");
}

fn vector_trace<'a>(doc: &'a Value, mode: &str) -> &'a Value {
    doc["vector"].as_array().unwrap().iter().find(|t| t["mode"] == mode).unwrap_or_else(|| panic!("{mode} trace"))
}

#[test]
fn cartpole_equals_gymnasium_from_the_same_seeds() {
    let doc = load("CartPole-v1");
    check_resets(&doc, CartPole::new);
    check_single(&doc, cartpole_v1());
    let t = vector_trace(&doc, "default");
    assert_eq!(t["vectoriser"], "CartPoleVectorEnv", "make_vec's default for CartPole");
    assert_eq!(BatchSeeding::gymnasium_default("CartPole-v1"), BatchSeeding::Shared);
    let actions = digits(t["actions"].as_str().unwrap());
    // Gymnasium's CartPoleVectorEnv returns float32 rewards; check both reward widths and every ISA.
    for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
        let mut b = CartPoleVec::new(4).unwrap();
        b.set_isa(isa);
        check_batch::<_, f32>(&doc, t, b, actions.clone());
    }
    check_batch::<_, f64>(&doc, t, CartPoleVec::new(4).unwrap(), actions);
    let t = vector_trace(&doc, "sync");
    assert_eq!(t["vectoriser"], "SyncVectorEnv");
    let b = CartPoleVec::with_seeding(4, 500, BatchSeeding::PerEnv).unwrap();
    check_batch::<_, f64>(&doc, t, b, digits(t["actions"].as_str().unwrap()));
    let t = vector_trace(&doc, "same_step");
    let mut b = CartPoleVec::with_seeding(4, 500, BatchSeeding::PerEnv).unwrap();
    b.set_autoreset_mode(AutoresetMode::SameStep);
    check_batch::<_, f64>(&doc, t, b, digits(t["actions"].as_str().unwrap()));
}

#[test]
fn acrobot_equals_gymnasium_from_the_same_seeds() {
    let doc = load("Acrobot-v1");
    check_resets(&doc, Acrobot::new);
    check_single(&doc, acrobot_v1());
    let t = vector_trace(&doc, "default");
    assert_eq!(t["vectoriser"], "SyncVectorEnv");
    check_batch::<_, f64>(&doc, t, AcrobotVec::new(4).unwrap(), digits(t["actions"].as_str().unwrap()));
}

#[test]
fn mountain_car_equals_gymnasium_from_the_same_seeds() {
    let doc = load("MountainCar-v0");
    check_resets(&doc, MountainCar::new);
    check_single(&doc, mountain_car_v0());
    let t = vector_trace(&doc, "default");
    check_batch::<_, f64>(&doc, t, MountainCarVec::new(4).unwrap(), digits(t["actions"].as_str().unwrap()));
}

#[test]
fn mountain_car_continuous_equals_gymnasium_from_the_same_seeds() {
    let doc = load("MountainCarContinuous-v0");
    check_resets(&doc, MountainCarContinuous::new);
    check_single(&doc, mountain_car_continuous_v0());
    let t = vector_trace(&doc, "default");
    let limit = t["max_episode_steps"].as_u64().unwrap() as usize;
    let b = MountainCarContinuousVec::with_time_limit(4, limit).unwrap();
    check_batch::<_, f64>(&doc, t, b, f32s(t["actions"].as_str().unwrap()));
}

#[test]
fn pendulum_equals_gymnasium_from_the_same_seeds() {
    let doc = load("Pendulum-v1");
    check_resets(&doc, Pendulum::new);
    check_single(&doc, pendulum_v1());
    let t = vector_trace(&doc, "default");
    check_batch::<_, f64>(&doc, t, PendulumVec::new(4).unwrap(), f32s(t["actions"].as_str().unwrap()));
    let t = vector_trace(&doc, "same_step");
    let mut b = PendulumVec::new(4).unwrap();
    b.set_autoreset_mode(AutoresetMode::SameStep);
    check_batch::<_, f64>(&doc, t, b, f32s(t["actions"].as_str().unwrap()));
}

#[test]
fn frozen_lake_equals_gymnasium_from_the_same_seeds() {
    for (stem, make) in [("FrozenLake-v1", frozen_lake_v1 as fn() -> _), ("FrozenLake8x8-v1", frozen_lake_8x8_v1)] {
        let doc = load(stem);
        check_resets(&doc, make);
        check_single(&doc, make());
        check_sync_vec(&doc, vector_trace(&doc, "default"), (0..4).map(|_| make()).collect());
    }
    // Gymnasium's seeded random maps.
    let doc = load("FrozenLake-v1");
    for m in doc["random_maps"].as_array().unwrap() {
        let (size, p, seed) =
            (m["size"].as_u64().unwrap() as usize, m["p"].as_f64().unwrap(), m["seed"].as_u64().unwrap());
        let want: Vec<String> = m["map"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
        assert_eq!(generate_random_map(size, p, seed).unwrap(), want, "generate_random_map({size}, {p}, {seed})");
    }
}

#[test]
fn cliff_walking_equals_gymnasium_from_the_same_seeds() {
    for (stem, make) in
        [("CliffWalking-v1", cliff_walking_v1 as fn() -> _), ("CliffWalkingSlippery-v1", cliff_walking_slippery_v1)]
    {
        let doc = load(stem);
        check_resets(&doc, make);
        check_single(&doc, make());
        check_sync_vec(&doc, vector_trace(&doc, "default"), (0..4).map(|_| make()).collect());
    }
}

#[test]
fn taxi_equals_gymnasium_from_the_same_seeds() {
    let doc = load("Taxi-v4");
    check_resets(&doc, taxi_v4);
    check_single(&doc, taxi_v4());
    check_sync_vec(&doc, vector_trace(&doc, "default"), (0..4).map(|_| taxi_v4()).collect());

    // Rainy, with a fickle passenger (probability 0.5): the stream mixes categorical draws,
    // `random()` at reset and `choice` of a new destination (a 32-bit bounded draw).
    let doc = load("Taxi-v4-rainy-fickle");
    let config =
        TaxiConfig { is_rainy: true, fickle_passenger: true, fickle_probability: 0.5, ..TaxiConfig::default() };
    let make = || taxi_v4_with(config.clone()).unwrap();
    check_resets(&doc, make);
    check_single(&doc, make());
    check_sync_vec(&doc, vector_trace(&doc, "default"), (0..4).map(|_| make()).collect());
}

#[test]
fn unseeded_envs_draw_fresh_entropy_as_gymnasium_does() {
    // Two never-seeded envs start from different states (the chance that 16 CartPole resets in a
    // row agree by accident is nil); reset(None) keeps drawing from the env's own stream.
    let a: Vec<[f32; 4]> = (0..16).map(|_| CartPole::new().reset(None).unwrap().0).collect();
    assert!(a.windows(2).any(|w| w[0] != w[1]));
    let mut env = cartpole_v1();
    let first = env.reset(Some(3)).unwrap().0;
    let second = env.reset(None).unwrap().0;
    assert_ne!(first, second);
    assert_eq!(env.reset(Some(3)).unwrap().0, first);
    // The observation layout helpers agree with the fixtures' (FlatObs writes the same f32s).
    let mut buf = [0.0f32; 4];
    first.write_flat(&mut buf);
    assert_eq!(buf, first);
}
