//! Classic control against Gymnasium 1.4.0 (NumPy 2.4.6) reference traces, bit for bit.
//!
//! Protocol (see `fixtures/env_traces/*.json`): reset, set the internal state to `initial_state`,
//! apply the stored actions; each step's observation (f32 written as an exact double), reward,
//! flags and internal f64 state must be equal, not close. When an episode ends, the env is reset
//! and the same initial state set again (the time limit restarts). Every trace is replayed through
//! the scalar env (inside its registered `TimeLimit`) and through a batch of three copies.

use rlox_core::env::{FlatObs, SetState};
use rlox_core::vec_env::VecEnv;
use rlox_core::wrappers::TimeLimit;
use rlox_core::{Env, Error};
use rlox_envs::classic_control::*;
use serde_json::Value;
use std::path::Path;

struct TraceStep {
    t: usize,
    action: Value,
    obs: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
    state_after: Vec<f64>,
}

struct Trace {
    env_id: String,
    max_episode_steps: usize,
    initial_state: Vec<f64>,
    steps: Vec<TraceStep>,
    terminations: usize,
    truncations: usize,
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

/// The reference traces (200 steps each, from the project's reference data).
const REFERENCE: &str = "env_traces";
/// Longer traces written by `bench/gen_classic_control_traces.py` (1000 steps each) that reach
/// terminations, walls, clipped actions and fast spins.
const EXTRA: &str = "env_traces_extra";

fn load(dir: &str, name: &str) -> Trace {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("trace json");
    let steps = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| TraceStep {
            t: s["t"].as_u64().unwrap() as usize,
            action: s["action"].clone(),
            obs: floats(&s["obs"]),
            reward: s["reward"].as_f64().unwrap(),
            terminated: s["terminated"].as_bool().unwrap(),
            truncated: s["truncated"].as_bool().unwrap(),
            state_after: floats(&s["state_after"]),
        })
        .collect::<Vec<_>>();
    let trace = Trace {
        env_id: v["env_id"].as_str().unwrap().to_string(),
        max_episode_steps: v["max_episode_steps"].as_u64().unwrap() as usize,
        initial_state: floats(&v["initial_state"]),
        steps,
        terminations: v["summary"]["terminations"].as_u64().unwrap() as usize,
        truncations: v["summary"]["truncations"].as_u64().unwrap() as usize,
    };
    assert_eq!(trace.env_id, name);
    assert!(!trace.steps.is_empty());
    trace
}

fn discrete(v: &Value) -> usize {
    v.as_u64().expect("discrete action") as usize
}

fn continuous(v: &Value) -> Vec<f32> {
    // The stored actions are float32 values written as exact doubles.
    floats(v).into_iter().map(|x| x as f32).collect()
}

fn flat<O: FlatObs>(o: &O) -> Vec<f64> {
    let mut buf = vec![0.0f32; o.flat_len()];
    o.write_flat(&mut buf);
    buf.into_iter().map(f64::from).collect()
}

/// Replay `trace` through a scalar env inside its registered time limit.
fn replay_scalar<E>(mut env: TimeLimit<E>, trace: &Trace, action: impl Fn(&Value) -> E::Action)
where
    E: Env + SetState,
    E::Obs: FlatObs,
{
    assert_eq!(env.id(), trace.env_id);
    assert_eq!(env.max_episode_steps(), trace.max_episode_steps);
    env.reset(Some(0)).unwrap();
    env.inner_mut().set_state(&trace.initial_state).unwrap();
    let (mut terminations, mut truncations) = (0, 0);
    for s in &trace.steps {
        let step = env.step(&action(&s.action)).unwrap();
        let ctx = format!("{} t={}", trace.env_id, s.t);
        assert_eq!(flat(&step.obs), s.obs, "{ctx}: obs");
        assert_eq!(step.reward, s.reward, "{ctx}: reward");
        assert_eq!(step.terminated, s.terminated, "{ctx}: terminated");
        assert_eq!(step.truncated, s.truncated, "{ctx}: truncated");
        assert_eq!(env.inner().state(), s.state_after, "{ctx}: state_after");
        terminations += step.terminated as usize;
        truncations += step.truncated as usize;
        if step.done() {
            env.reset(None).unwrap();
            env.inner_mut().set_state(&trace.initial_state).unwrap();
        }
    }
    assert_eq!((terminations, truncations), (trace.terminations, trace.truncations), "{}: episode ends", trace.env_id);
}

const COPIES: usize = 3;

/// Replay `trace` through a batch of [`COPIES`] identical envs.
///
/// After an episode ends, one extra call performs the `NEXT_STEP` autoreset (reward 0, flags
/// false, action ignored); then the initial state is set again, as the trace protocol asks.
fn replay_batch<V: VecEnv>(
    mut venv: V,
    trace: &Trace,
    action: impl Fn(&Value) -> V::Action,
    set_state: impl Fn(&mut V, usize, &[f64]),
    state: impl Fn(&V, usize) -> Vec<f64>,
) {
    let d = venv.obs_dim();
    assert_eq!(venv.num_envs(), COPIES);
    venv.reset(Some(0)).unwrap();
    for i in 0..COPIES {
        set_state(&mut venv, i, &trace.initial_state);
    }
    for s in &trace.steps {
        let actions = vec![action(&s.action); COPIES];
        venv.step(&actions).unwrap();
        for i in 0..COPIES {
            let ctx = format!("{} batch env {i} t={}", trace.env_id, s.t);
            let obs: Vec<f64> = venv.observations()[i * d..(i + 1) * d].iter().map(|&x| f64::from(x)).collect();
            assert_eq!(obs, s.obs, "{ctx}: obs");
            assert_eq!(venv.rewards()[i], s.reward, "{ctx}: reward");
            assert_eq!(venv.terminated()[i], s.terminated, "{ctx}: terminated");
            assert_eq!(venv.truncated()[i], s.truncated, "{ctx}: truncated");
            assert_eq!(state(&venv, i), s.state_after, "{ctx}: state_after");
        }
        if s.terminated || s.truncated {
            venv.step(&actions).unwrap();
            for i in 0..COPIES {
                assert_eq!(venv.rewards()[i], 0.0, "autoreset reward");
                assert!(!venv.terminated()[i] && !venv.truncated()[i], "autoreset flags");
                set_state(&mut venv, i, &trace.initial_state);
            }
        }
    }
}

#[test]
fn cartpole_matches_gymnasium() {
    for dir in [REFERENCE, EXTRA] {
        let trace = load(dir, "CartPole-v1");
        replay_scalar(cartpole_v1(), &trace, discrete);
        replay_batch(
            CartPoleVec::new(COPIES).unwrap(),
            &trace,
            discrete,
            |v, i, s| v.set_state(i, s).unwrap(),
            |v, i| v.state(i).unwrap(),
        );
    }
}

#[test]
fn acrobot_matches_gymnasium() {
    for dir in [REFERENCE, EXTRA] {
        let trace = load(dir, "Acrobot-v1");
        replay_scalar(acrobot_v1(), &trace, discrete);
        replay_batch(
            AcrobotVec::new(COPIES).unwrap(),
            &trace,
            discrete,
            |v, i, s| v.set_state(i, s).unwrap(),
            |v, i| v.state(i).unwrap(),
        );
    }
}

#[test]
fn mountain_car_matches_gymnasium() {
    for dir in [REFERENCE, EXTRA] {
        let trace = load(dir, "MountainCar-v0");
        replay_scalar(mountain_car_v0(), &trace, discrete);
        replay_batch(
            MountainCarVec::new(COPIES).unwrap(),
            &trace,
            discrete,
            |v, i, s| v.set_state(i, s).unwrap(),
            |v, i| v.state(i).unwrap(),
        );
    }
}

#[test]
fn mountain_car_continuous_matches_gymnasium() {
    for dir in [REFERENCE, EXTRA] {
        let trace = load(dir, "MountainCarContinuous-v0");
        replay_scalar(mountain_car_continuous_v0(), &trace, continuous);
        replay_batch(
            MountainCarContinuousVec::new(COPIES).unwrap(),
            &trace,
            continuous,
            |v, i, s| v.set_state(i, s).unwrap(),
            |v, i| v.state(i).unwrap(),
        );
    }
}

#[test]
fn pendulum_matches_gymnasium() {
    for dir in [REFERENCE, EXTRA] {
        let trace = load(dir, "Pendulum-v1");
        assert!(trace.steps.iter().any(|s| continuous(&s.action)[0].abs() > 2.0), "the trace exercises clipping");
        replay_scalar(pendulum_v1(), &trace, continuous);
        replay_batch(
            PendulumVec::new(COPIES).unwrap(),
            &trace,
            continuous,
            |v, i, s| v.set_state(i, s).unwrap(),
            |v, i| v.state(i).unwrap(),
        );
    }
}

#[test]
fn cartpole_truncates_at_500() {
    let mut env = cartpole_v1();
    env.reset(Some(1)).unwrap();
    let upright = [0.0, 0.0, 0.0, 0.0];
    for t in 1..=500 {
        // Keep the pole upright so that only the time limit can end the episode.
        env.inner_mut().set_state(&upright).unwrap();
        let s = env.step(&(t % 2)).unwrap();
        assert!(!s.terminated);
        assert_eq!(s.truncated, t == 500, "t={t}");
    }
    env.reset(None).unwrap();
    assert!(!env.step(&0).unwrap().truncated, "the clock restarts on reset");

    let mut venv = CartPoleVec::new(2).unwrap();
    venv.reset(Some(1)).unwrap();
    for t in 1..=500 {
        for i in 0..2 {
            venv.set_state(i, &upright).unwrap();
        }
        venv.step(&[0, 1]).unwrap();
        assert_eq!(venv.truncated(), &[t == 500, t == 500], "batch t={t}");
        assert_eq!(venv.terminated(), &[false, false]);
    }
    venv.step(&[0, 1]).unwrap();
    assert_eq!(venv.truncated(), &[false, false], "autoreset step");
    assert_eq!(venv.rewards(), &[0.0, 0.0], "autoreset reward");
    assert!(venv.observations().iter().all(|x| x.abs() < 0.05), "reset observation");
}

#[test]
fn pendulum_truncates_at_200() {
    let mut env = pendulum_v1();
    env.reset(Some(3)).unwrap();
    for t in 1..=200 {
        let s = env.step(&vec![0.5]).unwrap();
        assert!(!s.terminated);
        assert_eq!(s.truncated, t == 200, "t={t}");
    }
    let mut venv = PendulumVec::new(4).unwrap();
    venv.reset(Some(3)).unwrap();
    let actions = vec![vec![0.5f32]; 4];
    for t in 1..=200 {
        venv.step(&actions).unwrap();
        assert!(venv.truncated().iter().all(|&x| x == (t == 200)), "batch t={t}");
    }
}

#[test]
fn registered_time_limits() {
    assert_eq!(cartpole_v1().max_episode_steps(), 500);
    assert_eq!(acrobot_v1().max_episode_steps(), 500);
    assert_eq!(mountain_car_v0().max_episode_steps(), 200);
    assert_eq!(mountain_car_continuous_v0().max_episode_steps(), 999);
    assert_eq!(pendulum_v1().max_episode_steps(), 200);
    assert_eq!(CartPole::max_episode_steps(), 500);
    assert_eq!(Acrobot::max_episode_steps(), 500);
    assert_eq!(MountainCar::max_episode_steps(), 200);
    assert_eq!(MountainCarContinuous::max_episode_steps(), 999);
    assert_eq!(Pendulum::max_episode_steps(), 200);
}

fn is_invalid_action<T: std::fmt::Debug>(r: rlox_core::Result<T>) -> bool {
    matches!(r, Err(Error::InvalidAction { .. }))
}

#[test]
fn invalid_actions_are_errors() {
    let mut cp = cartpole_v1();
    cp.reset(Some(0)).unwrap();
    assert!(is_invalid_action(cp.step(&2)));
    let mut ac = acrobot_v1();
    ac.reset(Some(0)).unwrap();
    assert!(is_invalid_action(ac.step(&3)));
    let mut mc = mountain_car_v0();
    mc.reset(Some(0)).unwrap();
    assert!(is_invalid_action(mc.step(&3)));

    let mut pe = pendulum_v1();
    pe.reset(Some(0)).unwrap();
    let before = pe.inner().state();
    assert!(is_invalid_action(pe.step(&vec![f32::NAN])));
    assert!(is_invalid_action(pe.step(&vec![f32::INFINITY])));
    assert!(is_invalid_action(pe.step(&vec![])));
    assert!(is_invalid_action(pe.step(&vec![0.0, 0.0])));
    assert_eq!(pe.inner().state(), before, "a rejected action leaves the state alone");
    assert!(pe.step(&vec![7.0]).is_ok(), "finite out-of-range torques are clipped, as in Gymnasium");

    let mut mcc = mountain_car_continuous_v0();
    mcc.reset(Some(0)).unwrap();
    assert!(is_invalid_action(mcc.step(&vec![f32::NAN])));
    assert!(is_invalid_action(mcc.step(&vec![1.0, 1.0])));

    let mut v = CartPoleVec::new(2).unwrap();
    v.reset(Some(0)).unwrap();
    assert!(is_invalid_action(v.step(&[0, 2])));
    assert!(matches!(v.step(&[0]), Err(Error::Invalid { .. })), "wrong number of actions");
    let mut pv = PendulumVec::new(2).unwrap();
    pv.reset(Some(0)).unwrap();
    assert!(is_invalid_action(pv.step(&[vec![0.0], vec![f32::NAN]])));
    assert!(is_invalid_action(pv.step(&[vec![0.0], vec![]])));
    let mut mv = MountainCarContinuousVec::new(1).unwrap();
    mv.reset(None).unwrap();
    assert!(is_invalid_action(mv.step(&[vec![0.0, 0.0]])));
}

#[test]
fn step_before_reset_is_an_error() {
    assert!(matches!(CartPole::new().step(&0), Err(Error::NeedsReset { .. })));
    assert!(matches!(Pendulum::new().step(&vec![0.0]), Err(Error::NeedsReset { .. })));
    assert!(matches!(AcrobotVec::new(2).unwrap().step(&[0, 0]), Err(Error::NeedsReset { .. })));
}

#[test]
fn cartpole_after_termination_follows_gymnasium() {
    let mut env = CartPole::new();
    env.reset(Some(0)).unwrap();
    env.set_state(&[2.39, 1.0, 0.0, 0.0]).unwrap();
    let first = env.step(&1).unwrap();
    assert!(first.terminated);
    assert_eq!(first.reward, 1.0, "the terminal step itself pays 1");
    let after = env.step(&1).unwrap();
    assert!(after.terminated);
    assert_eq!(after.reward, 0.0, "steps past termination pay 0");
}

fn reset_obs<E: Env>(mut env: E, seed: Option<u64>) -> E::Obs {
    env.reset(seed).unwrap().0
}

#[test]
fn seeded_resets_are_reproducible_and_in_range() {
    assert_eq!(reset_obs(cartpole_v1(), Some(42)), reset_obs(cartpole_v1(), Some(42)));
    assert_ne!(reset_obs(cartpole_v1(), Some(42)), reset_obs(cartpole_v1(), Some(43)));
    assert_eq!(reset_obs(acrobot_v1(), Some(7)), reset_obs(acrobot_v1(), Some(7)));
    assert_eq!(reset_obs(mountain_car_v0(), Some(7)), reset_obs(mountain_car_v0(), Some(7)));
    assert_eq!(reset_obs(mountain_car_continuous_v0(), Some(7)), reset_obs(mountain_car_continuous_v0(), Some(7)));
    assert_eq!(reset_obs(pendulum_v1(), Some(7)), reset_obs(pendulum_v1(), Some(7)));

    // reset(None) continues the stream; reset(Some(s)) restarts it.
    let mut env = CartPole::new();
    let a = env.reset(Some(5)).unwrap().0;
    let b = env.reset(None).unwrap().0;
    assert_ne!(a, b);
    assert_eq!(env.reset(Some(5)).unwrap().0, a);

    for seed in 0..200 {
        let mut cp = CartPole::new();
        cp.reset(Some(seed)).unwrap();
        assert!(cp.state().iter().all(|x| (-0.05..0.05).contains(x)));
        let mut ac = Acrobot::new();
        ac.reset(Some(seed)).unwrap();
        assert!(ac.state().iter().all(|&x| (-0.1..=0.1).contains(&x) && x == x as f32 as f64));
        let mut mc = MountainCar::new();
        mc.reset(Some(seed)).unwrap();
        let s = mc.state();
        assert!((-0.6..-0.4).contains(&s[0]) && s[1] == 0.0);
        let mut pe = Pendulum::new();
        pe.reset(Some(seed)).unwrap();
        let s = pe.state();
        assert!((-std::f64::consts::PI..std::f64::consts::PI).contains(&s[0]) && (-1.0..1.0).contains(&s[1]));
    }

    // A per-env batch seeds env i with seed + i, like Gymnasium's SyncVectorEnv; env i matches a
    // scalar env seeded so.
    let mut venv = CartPoleVec::with_seeding(3, 500, BatchSeeding::PerEnv).unwrap();
    venv.reset(Some(10)).unwrap();
    for i in 0..3 {
        let mut env = CartPole::new();
        env.reset(Some(10 + i as u64)).unwrap();
        assert_eq!(venv.state(i).unwrap(), env.state());
    }
    // The default batch draws like Gymnasium's CartPoleVectorEnv: one generator seeded with the
    // seed, `uniform(-0.05, 0.05, size=(4, n))`, component by component.
    let mut venv = CartPoleVec::new(3).unwrap();
    venv.reset(Some(10)).unwrap();
    let mut g = rlox_core::seeding::Generator::new(10);
    let mut drawn = [0.0; 12];
    g.uniform_fill(-0.05, 0.05, &mut drawn);
    for i in 0..3 {
        assert_eq!(venv.state(i).unwrap(), vec![drawn[i], drawn[3 + i], drawn[6 + i], drawn[9 + i]]);
    }
}

#[test]
fn batch_equals_scalar_over_long_random_runs() {
    // Random actions over many episodes: every env of the batch must track a scalar env exactly,
    // including autoresets (the scalar env is reset on the call after its episode ended).
    use rand::Rng as _;
    let n = 4;
    let mut venv = PendulumVec::with_time_limit(n, 50).unwrap();
    venv.reset(Some(100)).unwrap();
    let mut envs: Vec<_> = (0..n)
        .map(|i| {
            let mut e = TimeLimit::new(Pendulum::new(), 50);
            e.reset(Some(100 + i as u64)).unwrap();
            e
        })
        .collect();
    let mut done = vec![false; n];
    let mut rng = rlox_core::seeding::rng_from_seed(9);
    for _ in 0..400 {
        let actions: Vec<Vec<f32>> = (0..n).map(|_| vec![rng.random_range(-3.0f32..3.0)]).collect();
        venv.step(&actions).unwrap();
        for i in 0..n {
            let (obs, reward) = if done[i] {
                done[i] = false;
                (envs[i].reset(None).unwrap().0, 0.0)
            } else {
                let s = envs[i].step(&actions[i]).unwrap();
                done[i] = s.done();
                (s.obs, s.reward)
            };
            assert_eq!(&venv.observations()[3 * i..3 * i + 3], &obs[..]);
            assert_eq!(venv.rewards()[i], reward);
            assert_eq!(venv.truncated()[i], done[i]);
        }
    }

    let mut venv = CartPoleVec::with_seeding(n, 500, BatchSeeding::PerEnv).unwrap();
    venv.reset(Some(7)).unwrap();
    let mut envs: Vec<_> = (0..n)
        .map(|i| {
            let mut e = cartpole_v1();
            e.reset(Some(7 + i as u64)).unwrap();
            e
        })
        .collect();
    let mut done = vec![false; n];
    for _ in 0..1000 {
        let actions: Vec<usize> = (0..n).map(|_| rng.random_range(0..2)).collect();
        venv.step(&actions).unwrap();
        for i in 0..n {
            if done[i] {
                done[i] = false;
                envs[i].reset(None).unwrap();
            } else {
                let s = envs[i].step(&actions[i]).unwrap();
                done[i] = s.done();
                assert_eq!(venv.terminated()[i], s.terminated);
            }
            assert_eq!(venv.state(i).unwrap(), envs[i].inner().state());
        }
    }
}

#[test]
fn cartpole_batch_kernels_agree_bit_for_bit() {
    // Every instruction set (those this CPU lacks fall back to the portable path) gives the same
    // observations, flags and states over long random runs, for batch sizes that are and are not
    // multiples of the vector width, in both seeding modes and both autoreset modes.
    use rand::Rng as _;
    for n in [1, 5, 8, 37, 64] {
        for seeding in [BatchSeeding::Shared, BatchSeeding::PerEnv] {
            for mode in [AutoresetMode::NextStep, AutoresetMode::SameStep] {
                let run = |isa: Isa| {
                    let mut v = CartPoleVec::with_seeding(n, 500, seeding).unwrap();
                    v.set_isa(isa);
                    v.set_autoreset_mode(mode);
                    let mut rng = rlox_core::seeding::rng_from_seed(n as u64);
                    let (mut obs, mut rew) = (vec![0.0f32; 4 * n], vec![0.0f32; n]);
                    let (mut term, mut trunc, mut fin) = (vec![false; n], vec![false; n], vec![0.0f32; 4 * n]);
                    v.reset_into(Some(5), &mut obs).unwrap();
                    let mut trace = Vec::new();
                    for _ in 0..1500 {
                        let actions: Vec<i64> = (0..n).map(|_| rng.random_range(0..2)).collect();
                        let out = StepBuffers {
                            obs: &mut obs,
                            rewards: &mut rew,
                            terminated: &mut term,
                            truncated: &mut trunc,
                            final_obs: &mut fin,
                        };
                        v.step_into(&actions, out).unwrap();
                        trace.extend(obs.iter().chain(&fin).map(|x| x.to_bits() as u64));
                        trace.extend(rew.iter().map(|x| x.to_bits() as u64));
                        trace.extend(term.iter().zip(&trunc).map(|(&a, &b)| a as u64 * 2 + b as u64));
                        trace.extend((0..n).flat_map(|i| v.state(i).unwrap()).map(f64::to_bits));
                    }
                    trace
                };
                let portable = run(Isa::Portable);
                assert!(portable.len() > 1000);
                assert!(run(Isa::Avx2) == portable, "AVX2 differs from portable (n={n}, {seeding:?}, {mode:?})");
                assert!(run(Isa::Avx512) == portable, "AVX-512 differs from portable (n={n}, {seeding:?}, {mode:?})");
            }
        }
    }
}

#[test]
fn the_vector_kernel_runs_where_the_c_library_is_glibc_with_fma() {
    // The batch checks its sin/cos replay against the C library once per process and falls back to
    // the portable path on any difference, so the parity tests pass either way. On the machines rlox
    // is built and measured on (x86-64 Linux, glibc, AVX2/FMA), the fast path must actually be taken.
    if cfg!(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")) && Isa::best() != Isa::Portable {
        let mut v = CartPoleVec::new(1).unwrap();
        v.set_isa(Isa::best());
        assert_eq!(v.isa(), Isa::best(), "the sin/cos replay disagrees with this C library");
        v.set_isa(Isa::Avx2);
        assert_eq!(v.isa(), Isa::Avx2);
    }
}

#[test]
fn batch_api_checks_buffers_and_actions_before_anything_moves() {
    let n = 3;
    let mut v = CartPoleVec::new(n).unwrap();
    let (mut obs, mut rew, mut term, mut trunc) =
        (vec![0.0f32; 4 * n], vec![0.0f64; n], vec![false; n], vec![false; n]);
    let mut fin: Vec<f32> = Vec::new();
    macro_rules! out {
        () => {
            StepBuffers {
                obs: &mut obs,
                rewards: &mut rew,
                terminated: &mut term,
                truncated: &mut trunc,
                final_obs: &mut fin,
            }
        };
    }
    assert!(matches!(v.step_into(&[0, 0, 0], out!()), Err(Error::NeedsReset { .. })));
    let e = v.reset_into(Some(0), &mut obs[..5]).unwrap_err().to_string();
    assert!(e.contains("observation buffer") && e.contains("expected 12"), "{e}");
    v.reset_into(Some(0), &mut obs).unwrap();
    let before: Vec<Vec<f64>> = (0..n).map(|i| v.state(i).unwrap()).collect();
    let e = v.step_into(&[0, -1, 1], out!()).unwrap_err();
    assert!(matches!(e, Error::InvalidAction { .. }) && e.to_string().contains("-1"), "{e}");
    assert!(matches!(v.step_into(&[0, 2, 1], out!()), Err(Error::InvalidAction { .. })));
    assert!(matches!(v.step_into(&[0, 1], out!()), Err(Error::Invalid { .. })), "one action per env");
    let mut short = vec![0.0f64; n - 1];
    let e = v
        .step_into(
            &[0, 1, 1],
            StepBuffers {
                obs: &mut obs,
                rewards: &mut short,
                terminated: &mut term,
                truncated: &mut trunc,
                final_obs: &mut fin,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("reward buffer"), "{e}");
    v.set_autoreset_mode(AutoresetMode::SameStep);
    let e = v.step_into(&[0, 1, 1], out!()).unwrap_err().to_string();
    assert!(e.contains("final observation buffer"), "SAME_STEP needs final_obs: {e}");
    let after: Vec<Vec<f64>> = (0..n).map(|i| v.state(i).unwrap()).collect();
    assert_eq!(before, after, "rejected calls leave every env alone");
    // Continuous batches reject NaN torques the same way.
    let mut p = PendulumVec::new(2).unwrap();
    let mut pobs = vec![0.0f32; 6];
    p.reset_into(Some(1), &mut pobs).unwrap();
    let (mut r2, mut t2, mut u2) = (vec![0.0f32; 2], vec![false; 2], vec![false; 2]);
    let out =
        StepBuffers { obs: &mut pobs, rewards: &mut r2, terminated: &mut t2, truncated: &mut u2, final_obs: &mut [] };
    assert!(matches!(p.step_into(&[0.5, f32::NAN], out), Err(Error::InvalidAction { .. })));
}

#[test]
fn same_step_autoreset_is_next_step_without_the_extra_call() {
    // With one generator per env, SAME_STEP resets draw the same numbers as NEXT_STEP resets: at the
    // call where an episode ends, SAME_STEP's final_obs is NEXT_STEP's observation and SAME_STEP's
    // observation is the reset observation NEXT_STEP returns one call later. Pendulum episodes all
    // end at step 200, so both runs take the same actions up to there.
    let n = 4;
    let mut next = PendulumVec::new(n).unwrap();
    let mut same = PendulumVec::new(n).unwrap();
    same.set_autoreset_mode(AutoresetMode::SameStep);
    let (mut o1, mut o2, mut fin) = (vec![0.0f32; 3 * n], vec![0.0f32; 3 * n], vec![f32::NAN; 3 * n]);
    next.reset_into(Some(9), &mut o1).unwrap();
    same.reset_into(Some(9), &mut o2).unwrap();
    let (mut r1, mut r2) = (vec![0.0f64; n], vec![0.0f64; n]);
    let (mut t1, mut u1, mut t2, mut u2) = (vec![false; n], vec![false; n], vec![false; n], vec![false; n]);
    let actions: Vec<f32> = (0..n).map(|i| i as f32 - 1.5).collect();
    for call in 1..=200 {
        next.step_into(
            &actions,
            StepBuffers { obs: &mut o1, rewards: &mut r1, terminated: &mut t1, truncated: &mut u1, final_obs: &mut [] },
        )
        .unwrap();
        same.step_into(
            &actions,
            StepBuffers {
                obs: &mut o2,
                rewards: &mut r2,
                terminated: &mut t2,
                truncated: &mut u2,
                final_obs: &mut fin,
            },
        )
        .unwrap();
        assert_eq!((&r1, &t1, &u1), (&r2, &t2, &u2), "call {call}: rewards and flags");
        if call < 200 {
            assert_eq!(o1, o2, "call {call}");
        } else {
            assert!(u2.iter().all(|&x| x));
            assert_eq!(fin, o1, "final observations");
        }
    }
    next.step_into(
        &actions,
        StepBuffers { obs: &mut o1, rewards: &mut r1, terminated: &mut t1, truncated: &mut u1, final_obs: &mut [] },
    )
    .unwrap();
    assert_eq!(o1, o2, "SAME_STEP's reset observation is NEXT_STEP's, one call earlier");
    assert!(r1.iter().all(|&r| r == 0.0));
}

#[test]
fn per_env_seeds_past_u64_max_grow_wider_as_python_integers_do() {
    // SyncVectorEnv seeds env i with seed + i in Python integers; at u64::MAX, env 1 gets 2^64.
    let mut v = CartPoleVec::with_seeding(2, 500, BatchSeeding::PerEnv).unwrap();
    v.reset(Some(u64::MAX)).unwrap();
    let mut first = CartPole::new();
    first.reset(Some(u64::MAX)).unwrap();
    assert_eq!(v.state(0).unwrap(), first.state());
    let mut second = CartPole::new();
    *rlox_core::env::NpRandom::np_random_mut(&mut second) = rlox_core::seeding::np_random_from_int_limbs(&[0, 1]).0;
    second.reset(None).unwrap();
    assert_eq!(v.state(1).unwrap(), second.state());
}
