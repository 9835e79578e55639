//! On-policy integration tests through the shared skeleton: PPO solves CartPole, exact resume from a
//! checkpoint, a diverging run stops with an error and keeps its last good checkpoint, A2C/REINFORCE
//! learn, continuous actions.
//!
//! Run in release (`cargo test --release -p rlox-cli -p rlox-deep --test onpolicy`), single-threaded
//! (RAYON_NUM_THREADS=1).

use rlox_core::checkpoint::CheckpointDir;
use rlox_core::logger::MemoryLogger;
use rlox_core::run::RunSettings;
use rlox_core::vec_env::VecEnv;
use rlox_deep::policies::ActionKind;
use rlox_deep::rollout::check_action_space;
use rlox_deep::{A2cConfig, OnPolicy, OnPolicyMethod, PpoConfig, ReinforceConfig, ResumableVecEnv, TrainSummary};
use rlox_envs::classic_control::{CartPole, Pendulum};
use std::collections::BTreeMap;

fn cartpole_envs(n: usize) -> ResumableVecEnv<CartPole> {
    ResumableVecEnv::new(n, CartPole::new, Some(500)).unwrap()
}

fn params<M: OnPolicyMethod>(t: &OnPolicy<M>) -> Vec<u8> {
    rlox_nn::to_safetensors_bytes(&t.model(), &BTreeMap::new()).unwrap()
}

fn run(seed: u64, total: u64, every: u64) -> RunSettings {
    RunSettings { seed, total_steps: total, checkpoint_every: every, eval_episodes: 2, ..RunSettings::default() }
}

/// Train `method` on CartPole; with `ckpt`, checkpoint there and (`resume`) continue from it;
/// `stop_after` stops right after that update's checkpoint, as if killed.
fn train<M: OnPolicyMethod + Clone>(
    method: &M,
    run: &RunSettings,
    ckpt: Option<&CheckpointDir>,
    resume: bool,
    stop_after: Option<u64>,
) -> (OnPolicy<M>, TrainSummary, MemoryLogger) {
    let mut t = OnPolicy::new(method.clone(), run, 4, ActionKind::Discrete(2)).unwrap();
    let mut envs = cartpole_envs(method.n_envs());
    if resume {
        t.resume(ckpt.unwrap(), &mut envs).unwrap();
    }
    if let Some(n) = stop_after {
        t.stop_after_updates(n);
    }
    let mut log = MemoryLogger::default();
    let s = t.learn(&mut envs, &mut cartpole_envs(run.eval_episodes), &mut log, ckpt).unwrap();
    (t, s, log)
}

/// PPO with the zoo's CartPole-v1 settings (the defaults, 100,000 steps) reaches the maximum return
/// of 500 in the deterministic evaluation (10 episodes). The threshold is Gymnasium's 475.
#[test]
fn ppo_solves_cartpole() {
    let run = RunSettings { seed: 0, total_steps: 100_000, eval_episodes: 10, ..RunSettings::default() };
    let (_, summary, log) = train(&PpoConfig::default(), &run, None, false, None);
    eprintln!("ppo cartpole: {summary:?}");
    assert!(summary.eval_return_mean >= 475.0, "{summary:?}");
    assert!(summary.env_steps >= 100_000);
    // The metrics use SB3's names.
    for name in [
        "rollout/ep_rew_mean",
        "train/policy_gradient_loss",
        "train/value_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/clip_fraction",
        "train/explained_variance",
        "train/learning_rate",
        "time/fps",
    ] {
        assert!(!log.series(name).is_empty(), "{name} was not logged");
    }
    // The learning rate decays linearly to 0.
    let lr = log.series("train/learning_rate");
    assert!(lr[0].1 > 0.99e-3 && lr.last().unwrap().1 < 1e-5, "{:?} {:?}", lr[0], lr.last());
}

/// A run stopped after 3 updates (its checkpoint written) and resumed in a fresh trainer ends with
/// bit-identical parameters, the same summary numbers and the same metrics as an uninterrupted run.
#[test]
fn ppo_resume_is_exact() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb) = (CheckpointDir::new(dir_a.path()), CheckpointDir::new(dir_b.path()));
    let ppo = PpoConfig { n_epochs: 4, batch_size: 64, ..Default::default() };
    let run = run(0, 8 * 32 * 6, 1);
    let (full, sum_a, log_a) = train(&ppo, &run, Some(&ca), false, None);
    let (stopped, _, log_first) = train(&ppo, &run, Some(&cb), false, Some(3));
    assert_ne!(params(&stopped), params(&full), "the stopped run must differ from the finished one");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cb.latest().unwrap().join("trainer_state.json")).unwrap()).unwrap();
    assert_eq!((st["n_updates"].as_u64(), st["algorithm"].as_str()), (Some(3), Some("ppo")));
    // Only the latest checkpoint remains.
    let entries: Vec<_> = std::fs::read_dir(dir_b.path()).unwrap().collect();
    assert_eq!(entries.len(), 2, "latest + one step-N directory");

    let (resumed, sum_b, log_second) = train(&ppo, &run, Some(&cb), true, None);
    assert_eq!(params(&resumed), params(&full), "resumed parameters differ from the uninterrupted run");
    assert_eq!(
        (sum_b.env_steps, sum_b.episodes, sum_b.n_updates, sum_b.gradient_steps, sum_b.eval_return_mean),
        (sum_a.env_steps, sum_a.episodes, sum_a.n_updates, sum_a.gradient_steps, sum_a.eval_return_mean)
    );
    // The metrics of the two sessions, concatenated, are the uninterrupted run's (wall-clock ones aside).
    let strip = |l: &MemoryLogger| -> Vec<(u64, String, u64)> {
        l.records.iter().filter(|r| r.1 != "time/fps").map(|(s, k, v)| (*s, k.clone(), v.to_bits())).collect()
    };
    let mut joined = strip(&log_first);
    joined.extend(strip(&log_second));
    assert_eq!(joined, strip(&log_a));
}

/// A2C and REINFORCE resume exactly too (REINFORCE restarts its envs each update; A2C restores them).
#[test]
fn a2c_and_reinforce_resume_exactly() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb) = (CheckpointDir::new(dir_a.path()), CheckpointDir::new(dir_b.path()));
    let a2c = A2cConfig::default();
    let run_a = run(0, 8 * 5 * 40, 8 * 5 * 7);
    let (full, sa, _) = train(&a2c, &run_a, Some(&ca), false, None);
    train(&a2c, &run_a, Some(&cb), false, Some(14));
    let (resumed, sb, _) = train(&a2c, &run_a, Some(&cb), true, None);
    assert_eq!(params(&full), params(&resumed));
    assert_eq!((sa.env_steps, sa.episodes, sa.n_updates), (sb.env_steps, sb.episodes, sb.n_updates));

    let (dir_c, dir_d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cc, cd) = (CheckpointDir::new(dir_c.path()), CheckpointDir::new(dir_d.path()));
    let rf = ReinforceConfig { n_envs: 4, ..Default::default() };
    let run_r = run(0, 3000, 1);
    let (full, sc, _) = train(&rf, &run_r, Some(&cc), false, None);
    train(&rf, &run_r, Some(&cd), false, Some(2));
    let (resumed, sd, _) = train(&rf, &run_r, Some(&cd), true, None);
    assert_eq!(params(&full), params(&resumed));
    assert_eq!((sc.env_steps, sc.n_updates), (sd.env_steps, sd.n_updates));
}

/// A learning rate of 1e30 makes the loss non-finite: the run stops with a divergence error naming the
/// gradient step, and the checkpoint on disk is still the last good one (update 2), which resumes.
#[test]
fn diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path());
    let good = PpoConfig { n_epochs: 2, ..Default::default() };
    let run = run(0, 8 * 32 * 10, 1);
    train(&good, &run, Some(&ckpt), false, Some(2));
    let bad = PpoConfig { learning_rate: 1e30, learning_rate_end: None, ..good.clone() };
    let mut t = OnPolicy::new(bad, &run, 4, ActionKind::Discrete(2)).unwrap();
    let mut envs = cartpole_envs(8);
    t.resume(&ckpt, &mut envs).unwrap();
    let err =
        t.learn(&mut envs, &mut cartpole_envs(2), &mut MemoryLogger::default(), Some(&ckpt)).unwrap_err().to_string();
    assert!(err.contains("ppo diverged") && err.contains("gradient step"), "{err}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.latest().unwrap().join("trainer_state.json")).unwrap()).unwrap();
    assert_eq!(st["n_updates"], 2);
    // The kept checkpoint resumes (with a sane learning rate).
    let (_, summary, _) = train(&good, &run, Some(&ckpt), true, Some(3));
    assert_eq!(summary.n_updates, 3);
}

/// A2C (zoo CartPole settings, SB3's RMSprop) and REINFORCE with a baseline learn CartPole: the mean
/// training return of the last 100 episodes rises well above a random policy's ~22.
#[test]
fn a2c_and_reinforce_learn_cartpole() {
    let r = RunSettings { seed: 1, total_steps: 60_000, ..RunSettings::default() };
    let (_, s, log) = train(&A2cConfig::default(), &r, None, false, None);
    let last = log.series("rollout/ep_rew_mean").last().unwrap().1;
    eprintln!("a2c: {s:?}, ep_rew_mean {last}");
    assert!(last > 100.0, "a2c ep_rew_mean {last}");
    let (_, s, log) = train(&ReinforceConfig::default(), &r, None, false, None);
    let last = log.series("rollout/ep_rew_mean").last().unwrap().1;
    eprintln!("reinforce: {s:?}, ep_rew_mean {last}");
    assert!(last > 100.0, "reinforce ep_rew_mean {last}");
}

/// Continuous actions: PPO on Pendulum-v1 runs, its actions are clipped to [-2, 2], the Gaussian's
/// std is logged, and the evaluation return is finite and negative.
#[test]
fn ppo_runs_on_pendulum() {
    let env_space = ResumableVecEnv::new(1, Pendulum::new, Some(200)).unwrap().single_action_space();
    let kind = check_action_space(&env_space, "ppo", "Pendulum-v1", false).unwrap();
    assert_eq!(kind, ActionKind::Continuous { low: vec![-2.0], high: vec![2.0] });
    let config = PpoConfig { learning_rate_end: None, clip_range_end: None, ..Default::default() };
    let mut t = OnPolicy::new(config, &run(0, 8 * 32 * 10, 0), 3, kind).unwrap();
    let mut envs = ResumableVecEnv::new(8, Pendulum::new, Some(200)).unwrap();
    let mut eval = ResumableVecEnv::new(2, Pendulum::new, Some(200)).unwrap();
    let mut log = MemoryLogger::default();
    let s = t.learn(&mut envs, &mut eval, &mut log, None).unwrap();
    assert!(s.eval_return_mean.is_finite() && s.eval_return_mean < 0.0, "{s:?}");
    assert!(!log.series("train/std").is_empty());
    // A discrete-only check names both the algorithm and the env.
    let err = check_action_space(&env_space, "dqn", "Pendulum-v1", true).unwrap_err().to_string();
    assert!(err.contains("dqn") && err.contains("Pendulum-v1"), "{err}");
}

/// The largest difference between two networks' parameters, and the largest parameter.
fn max_param_difference(a: &rlox_deep::ActorCritic, b: &rlox_deep::ActorCritic) -> (f32, f32) {
    let flat = |m: &rlox_deep::ActorCritic| -> Vec<f32> {
        let shapes = rlox_nn::checkpoint::param_shapes(m);
        let bytes = rlox_nn::to_safetensors_bytes(m, &BTreeMap::new()).unwrap();
        rlox_nn::checkpoint::read_tensors(&bytes, "model", &shapes).unwrap().concat()
    };
    let (x, y) = (flat(a), flat(b));
    assert_eq!(x.len(), y.len());
    let scale = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    (x.iter().zip(&y).fold(0.0f32, |m, (p, q)| m.max((p - q).abs())), scale)
}

/// Train `fused` and `burn` (the same method, one on each path) with `run` on envs from `envs`, and
/// check that they end with the same parameters and logged the same losses (see below).
fn same_steps<M, E>(
    name: &str,
    fused: M,
    burn: M,
    run: &RunSettings,
    obs_dim: usize,
    kind: ActionKind,
    envs: impl Fn(usize) -> ResumableVecEnv<E>,
) where
    M: OnPolicyMethod + Clone,
    E: rlox_core::env::Env,
    ResumableVecEnv<E>: VecEnv + rlox_deep::Resumable,
    <ResumableVecEnv<E> as VecEnv>::Action: rlox_deep::PolicyAction,
{
    let go = |m: M| {
        let mut t = OnPolicy::new(m.clone(), run, obs_dim, kind.clone()).unwrap();
        let mut log = MemoryLogger::default();
        t.learn(&mut envs(m.n_envs()), &mut envs(2), &mut log, None).unwrap();
        (t, log)
    };
    let (f, log_f) = go(fused);
    let (b, log_b) = go(burn);
    assert!(f.is_fused() && !b.is_fused(), "{name}");
    let (worst, scale) = max_param_difference(&f.model(), &b.model());
    eprintln!("{name}: parameters differ by {worst:e} (scale {scale})");
    assert!(worst <= 1e-5 * scale.max(1.0), "{name}: parameters differ by {worst} (scale {scale})");
    let series = |l: &MemoryLogger| -> Vec<(u64, String, f64)> {
        l.records.iter().filter(|r| r.1.starts_with("train/")).map(|(s, k, v)| (*s, k.clone(), *v)).collect()
    };
    let (sf, sb) = (series(&log_f), series(&log_b));
    assert_eq!(sf.len(), sb.len(), "{name}");
    for ((s1, k1, v1), (s2, k2, v2)) in sf.iter().zip(&sb) {
        assert_eq!((s1, k1), (s2, k2), "{name}");
        let tol = 1e-3 * v2.abs().max(1e-2);
        assert!((v1 - v2).abs() <= tol, "{name} step {s1} {k1}: fused {v1} burn {v2}");
    }
}

/// The fused small-MLP path and burn's autodiff train the same network: from one seed, PPO (discrete
/// with an entropy bonus and value clipping; Gaussian on Pendulum), A2C (RMSprop, normalised
/// advantages, entropy bonus) and REINFORCE (baseline, normalised advantages, entropy bonus) run a few
/// updates on each path; the parameters agree to 1e-5 of their scale (rounding compounds over the
/// steps to about 1e-7; a wrong gradient term, even the entropy bonus's alone, moves them by 1e-5 and
/// more) and every logged training metric to 1e-3 relative.
#[test]
fn fused_and_burn_paths_take_the_same_steps() {
    let cartpole = |n: usize| cartpole_envs(n);
    let pendulum = |n: usize| ResumableVecEnv::new(n, Pendulum::new, Some(200)).unwrap();
    let burn = |p: &rlox_deep::PolicyConfig| rlox_deep::PolicyConfig { fused: false, ..p.clone() };
    // (The clip range stays constant: at the zoo's final clip range of 0 the clip fraction counts
    // rounding noise of the ratio.)
    let ppo = PpoConfig {
        n_epochs: 3,
        batch_size: 64,
        ent_coef: 0.1,
        clip_range_vf: Some(0.2),
        clip_range_end: None,
        ..Default::default()
    };
    let ppo_burn = PpoConfig { policy: burn(&ppo.policy), ..ppo.clone() };
    let discrete = ActionKind::Discrete(2);
    same_steps("ppo", ppo.clone(), ppo_burn, &run(3, 8 * 32 * 3, 0), 4, discrete.clone(), cartpole);
    let box_kind = ActionKind::Continuous { low: vec![-2.0], high: vec![2.0] };
    let ppo_c = PpoConfig { learning_rate_end: None, ..ppo };
    let ppo_c_burn = PpoConfig { policy: burn(&ppo_c.policy), ..ppo_c.clone() };
    same_steps("ppo pendulum", ppo_c, ppo_c_burn, &run(3, 8 * 32 * 3, 0), 3, box_kind, pendulum);
    let a2c = A2cConfig { ent_coef: 0.1, normalize_advantage: true, ..Default::default() };
    let a2c_burn = A2cConfig { policy: burn(&a2c.policy), ..a2c.clone() };
    same_steps("a2c", a2c, a2c_burn, &run(3, 8 * 5 * 10, 0), 4, discrete.clone(), cartpole);
    let rf = ReinforceConfig { n_envs: 4, normalize_advantage: true, ent_coef: 0.1, ..Default::default() };
    let rf_burn = ReinforceConfig { policy: burn(&rf.policy), ..rf.clone() };
    same_steps("reinforce", rf, rf_burn, &run(3, 600, 0), 4, discrete, cartpole);
}
