//! DQN integration tests: the book's grid-world example, CartPole learning progress, failure handling.
//!
//! Run in release (`cargo test --release -p rlox-deep`): burn's kernels are slow in debug builds.

use rand::Rng as _;
use rlox_core::checkpoint::CheckpointDir;
use rlox_core::env::{Env, FlatObs, Info, SetState, Step};
use rlox_core::logger::MemoryLogger;
use rlox_core::mdp::Mdp;
use rlox_core::run::RunSettings;
use rlox_core::seeding::rng_from_seed;
use rlox_core::spaces::Space;
use rlox_deep::{ActionKind, Dqn, DqnConfig, OffPolicy, ReplayBuffer, ResumableVecEnv, TrainSummary};
use rlox_envs::classic_control::CartPole;
use rlox_envs::gridworld::GridWorld;

/// The networks are initialised from burn's process-wide random generator (seeded by
/// `rlox_nn::train_device`), so two agents built at the same time in one process would race for it and
/// lose their same-seed reproducibility. The tests of this file therefore run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Train DQN on `n_actions`-action envs from `make` (time limit `limit`) for the run `run`.
fn train_dqn<E>(
    make: impl Fn() -> E + Clone,
    limit: Option<usize>,
    config: &DqnConfig,
    run: &RunSettings,
    logger: &mut MemoryLogger,
    ckpt: Option<&CheckpointDir>,
) -> rlox_core::Result<TrainSummary>
where
    E: Env<Action = usize> + SetState,
    E::Obs: FlatObs,
{
    let probe = make();
    let n = probe.action_space().as_discrete().unwrap().n;
    let obs_dim = probe.observation_space().flat_dim();
    let agent = Dqn::new(obs_dim, n, config, run)?;
    let mut t = OffPolicy::new(agent, run, obs_dim, ActionKind::Discrete(n))?;
    let mut envs = ResumableVecEnv::new(1, make.clone(), limit)?;
    let mut eval = ResumableVecEnv::new(run.eval_episodes, make, limit)?;
    t.learn(&mut envs, &mut eval, logger, ckpt)
}

fn run(seed: u64, total: u64, eval_episodes: usize) -> RunSettings {
    RunSettings { seed, total_steps: total, eval_episodes, ..RunSettings::default() }
}

/// Optimal state values by value iteration on the explicit model.
fn optimal_values(env: &GridWorld, gamma: f64) -> Vec<f64> {
    let (ns, na) = (env.n_states(), env.n_actions());
    let mut v = vec![0.0; ns];
    let mut row = Vec::new();
    for _ in 0..2000 {
        let mut next = vec![0.0; ns];
        for (s, slot) in next.iter_mut().enumerate() {
            *slot = (0..na)
                .map(|a| {
                    env.transitions(s, a, &mut row);
                    env.expected_reward(s, a) + gamma * row.iter().map(|&(s2, p)| p * v[s2]).sum::<f64>()
                })
                .fold(f64::MIN, f64::max);
        }
        v = next;
    }
    v
}

/// The book's input normalisation: (row, col) scaled to [0, 1].
fn features(env: &GridWorld, s: usize) -> [f32; 2] {
    let (r, c) = env.cell_of(s);
    ((r - 1) as f32 / (env.rows() - 1) as f32, (c - 1) as f32 / (env.cols() - 1) as f32).into()
}

fn value_rmse(dqn: &Dqn, env: &GridWorld, v_star: &[f64]) -> f64 {
    let obs: Vec<f32> = (0..env.n_states()).flat_map(|s| features(env, s)).collect();
    let q = dqn.q_values(&obs);
    let na = env.n_actions();
    let se: f64 = (0..env.n_states())
        .map(|s| {
            let v = q[s * na..(s + 1) * na].iter().cloned().fold(f32::MIN, f32::max) as f64;
            (v - v_star[s]).powi(2)
        })
        .sum();
    (se / env.n_states() as f64).sqrt()
}

/// Book section 8.4 (deep Q-learning, off-policy): one episode of 1,000 steps from the uniform
/// behaviour policy on the 5x5 grid world, replay buffer of those 1,000 transitions, mini-batches of
/// 100, one hidden layer of 100 units, inputs (row, col) normalised, target network copied every 10
/// iterations, squared TD error (the book's objective), Adam with learning rate 0.01. The book's network takes (row, col, action) and outputs one value; rlox's DQN takes
/// (row, col) and outputs the 5 action values. The state-value error must fall close to zero.
#[test]
fn book_gridworld_deep_q_learning_value_error_falls() {
    let _guard = serial();
    let mut env = GridWorld::from_preset("book-5x5").unwrap();
    let gamma = 0.9;
    let v_star = optimal_values(&env, gamma);
    let mut replay = ReplayBuffer::new(1000, 2, 1).unwrap();
    let mut rng = rng_from_seed(0);
    let (mut s, _) = env.reset(Some(0)).unwrap();
    for _ in 0..1000 {
        let a = rng.random_range(0..5);
        let step = env.step(&a).unwrap();
        replay.push(&features(&env, s), &[a as f32], step.reward as f32, &features(&env, step.obs), step.terminated);
        s = step.obs;
    }
    let config = DqnConfig {
        net_arch: vec![100],
        gamma,
        batch_size: 100,
        loss: rlox_deep::TdLoss::Mse,
        learning_rate: 1e-2,
        target_update_interval: 10,
        ..Default::default()
    };
    let mut dqn = Dqn::new(2, 5, &config, &run(1, 1, 1)).unwrap();
    let start = std::time::Instant::now();
    let rmse0 = value_rmse(&dqn, &env, &v_star);
    let mut curve = vec![rmse0];
    for it in 1..=6000 {
        let batch = replay.sample(100, &mut rng, 0.0);
        dqn.gradient_step(&batch, config.learning_rate).unwrap();
        if it % config.target_update_interval == 0 {
            dqn.update_target();
        }
        if it % 500 == 0 {
            dqn.refresh_policy();
            curve.push(value_rmse(&dqn, &env, &v_star));
        }
    }
    let last = *curve.last().unwrap();
    eprintln!(
        "grid-world DQN: state-value RMSE every 500 iterations {curve:.3?} ({:.2} s)",
        start.elapsed().as_secs_f64()
    );
    assert!(last < 0.15 * rmse0 && last < 1.0, "RMSE {rmse0:.3} -> {last:.3}: {curve:?}");
}

/// CartPole-v1 with the zoo settings, shortened to 20k steps: clear learning progress in CI time (release
/// builds; a debug build of burn is too slow for 9,600 gradient steps, so the test is ignored there).
///
/// One short run's greedy return varies a lot with the seed (seeds 0-5 on this machine: 78, 108, 319,
/// 147, 287, 311), so the test averages three seeds and asks for a mean above 100, where random play
/// scores about 22 and an untrained greedy net about 10.
#[test]
#[cfg_attr(debug_assertions, ignore = "slow in debug builds; run with --release")]
fn cartpole_learns_quickly() {
    let _guard = serial();
    let mut finals = Vec::new();
    for seed in 1..=3 {
        let mut logger = MemoryLogger::default();
        let summary =
            train_dqn(CartPole::new, Some(500), &DqnConfig::default(), &run(seed, 20_000, 10), &mut logger, None)
                .unwrap();
        eprintln!("cartpole 20k steps, seed {seed}: {summary:?}");
        let early: Vec<f64> = logger.series("rollout/ep_return").iter().take(20).map(|(_, r)| *r).collect();
        let early_mean = early.iter().sum::<f64>() / early.len() as f64;
        assert!(early_mean < 40.0, "random play scores ~22: {early_mean}");
        assert!(logger.series("train/loss").iter().all(|(_, l)| l.is_finite()));
        assert_eq!(summary.env_steps, 20_000);
        finals.push(summary.eval_return_mean);
    }
    let mean = finals.iter().sum::<f64>() / finals.len() as f64;
    assert!(mean > 100.0, "mean greedy return of seeds 1-3 {mean} ({finals:?}); random play ~22");
}

/// Same seed, same numbers.
#[test]
fn training_is_reproducible() {
    let _guard = serial();
    let config = DqnConfig {
        learning_starts: 500,
        train_freq: 100,
        gradient_steps: 10,
        net_arch: vec![32],
        ..Default::default()
    };
    let once = || {
        let mut logger = MemoryLogger::default();
        train_dqn(CartPole::new, Some(500), &config, &run(9, 1500, 2), &mut logger, None).unwrap();
        logger.series("train/loss")
    };
    let (a, b) = (once(), once());
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

/// An env whose rewards become NaN after `after` steps (to make the loss diverge).
#[derive(Clone)]
struct NanRewardsAfter<E> {
    inner: E,
    steps: u64,
    after: u64,
}

impl<E: SetState> SetState for NanRewardsAfter<E> {
    fn set_state(&mut self, state: &[f64]) -> rlox_core::Result<()> {
        self.inner.set_state(state)
    }
    fn state(&self) -> Vec<f64> {
        self.inner.state()
    }
}

impl<E: Env<Action = usize>> Env for NanRewardsAfter<E> {
    type Obs = E::Obs;
    type Action = usize;
    fn id(&self) -> &str {
        "NanRewards"
    }
    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> Space {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> rlox_core::Result<(E::Obs, Info)> {
        self.inner.reset(seed)
    }
    fn step(&mut self, action: &usize) -> rlox_core::Result<Step<E::Obs>> {
        self.steps += 1;
        let mut s = self.inner.step(action)?;
        if self.steps > self.after {
            s.reward = f64::NAN;
        }
        Ok(s)
    }
}

#[test]
fn nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = CheckpointDir::new(dir.path());
    let config = DqnConfig {
        learning_starts: 200,
        train_freq: 100,
        gradient_steps: 5,
        net_arch: vec![16],
        ..Default::default()
    };
    let r = RunSettings { checkpoint_every: 500, ..run(0, 3000, 1) };
    // Training steps 1..=1200 are clean, then rewards are NaN; the next training round (step 1300)
    // diverges. (Each evaluation env has its own counter.)
    let make = || NanRewardsAfter { inner: CartPole::new(), steps: 0, after: 1200 };
    let err =
        train_dqn(make, Some(500), &config, &r, &mut MemoryLogger::default(), Some(&ckpt)).unwrap_err().to_string();
    assert!(err.contains("dqn diverged") && err.contains("loss became NaN"), "{err}");
    // The checkpoint of step 1000 is intact and loadable.
    assert!(ckpt.latest().unwrap().ends_with("step-000000001000"));
    let q = rlox_deep::checkpoint::load_module(
        &ckpt.latest().unwrap(),
        "q_net",
        Dqn::new(4, 2, &config, &r).unwrap().q_net().clone(),
    )
    .unwrap();
    assert!(rlox_nn::all_finite(&q));
    // No temp directories were left behind: `latest` and one checkpoint.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn options_double_dueling_prioritized_run() {
    let _guard = serial();
    let config = DqnConfig {
        learning_starts: 200,
        train_freq: 100,
        gradient_steps: 5,
        net_arch: vec![32, 32],
        double_q: true,
        dueling: true,
        tau: 0.5,
        learning_rate_end: Some(0.0),
        prioritized_replay: Some(Default::default()),
        ..Default::default()
    };
    let mut logger = MemoryLogger::default();
    let s = train_dqn(CartPole::new, Some(500), &config, &run(0, 1200, 1), &mut logger, None).unwrap();
    assert_eq!(s.gradient_steps, 50);
    let lrs = logger.series("train/learning_rate");
    assert!(lrs.windows(2).all(|w| w[1].1 < w[0].1), "{lrs:?}");
}

#[test]
fn gridworld_state_obs_trains_end_to_end() {
    let _guard = serial();
    // DQN on an env with usize observations (flattened to one feature) and episodes ending at the target.
    let mut cfg = rlox_envs::gridworld::preset("book-3x3").unwrap();
    cfg.terminate_at_target = true;
    let make = move || GridWorld::new(cfg.clone()).unwrap();
    let config =
        DqnConfig { learning_starts: 100, train_freq: 50, gradient_steps: 5, net_arch: vec![16], ..Default::default() };
    let s = train_dqn(make, Some(50), &config, &run(0, 600, 2), &mut MemoryLogger::default(), None).unwrap();
    assert!(s.eval_return_mean.is_finite());
}

/// The acceptance run: CartPole-v1 with the zoo settings reaches 500 within 50k env steps for at least
/// 3 of 5 seeds. Slow (minutes): `cargo test --release -p rlox-deep -- --ignored --nocapture`.
#[test]
#[ignore]
fn cartpole_zoo_settings_reach_500() {
    let _guard = serial();
    let mut solved = 0;
    for seed in 0..5 {
        let summary = train_dqn(
            CartPole::new,
            Some(500),
            &DqnConfig::default(),
            &run(seed, 50_000, 10),
            &mut MemoryLogger::default(),
            None,
        )
        .unwrap();
        eprintln!("seed {seed}: {summary:?}");
        if summary.eval_return_mean >= 500.0 {
            solved += 1;
        }
    }
    assert!(solved >= 3, "{solved} of 5 seeds reached 500");
}

/// The fused path and burn's autodiff take the same gradient steps: same initial weights from the
/// seed, the same Q-values after 20 Adam steps on random batches (Huber and squared loss, plain and
/// Double DQN, prioritised weights) to 1e-5 relative, the same statistics, and checkpoints with the
/// same arrays (weights and optimizer moments), so either path resumes the other's run.
#[test]
fn fused_and_burn_paths_take_the_same_steps() {
    let _guard = serial();
    use rlox_deep::TdLoss;
    let (obs_dim, n_actions, b) = (4, 3, 32);
    let mut rng = rng_from_seed(9);
    let mut batch = || {
        let mut v = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
        let obs = v(b * obs_dim);
        let next_obs = v(b * obs_dim);
        let rewards = v(b);
        let weights: Vec<f32> = v(b).iter().map(|x| 0.5 + x.abs()).collect();
        let actions: Vec<f32> = (0..b).map(|i| (i % n_actions) as f32).collect();
        let dones: Vec<f32> = (0..b).map(|i| (i % 5 == 0) as u8 as f32).collect();
        rlox_deep::replay::Batch { obs, actions, rewards, next_obs, dones, indices: (0..b).collect(), weights }
    };
    let batches: Vec<_> = (0..20).map(|_| batch()).collect();
    for (loss, double_q, prioritized) in [(TdLoss::Huber, false, false), (TdLoss::Mse, true, true)] {
        let config = DqnConfig {
            net_arch: vec![64, 64],
            loss,
            double_q,
            max_grad_norm: 0.5,
            prioritized_replay: prioritized.then(Default::default),
            ..Default::default()
        };
        let r = run(5, 1, 1);
        let mut fused = Dqn::new(obs_dim, n_actions, &config, &r).unwrap();
        let mut burn = Dqn::new(obs_dim, n_actions, &DqnConfig { fused: false, ..config.clone() }, &r).unwrap();
        assert!(fused.is_fused() && !burn.is_fused());
        let probe: Vec<f32> = batches[0].obs.clone();
        let (q0, q1) = (fused.q_values(&probe), burn.q_values(&probe));
        assert!(q0.iter().zip(&q1).all(|(x, y)| (x - y).abs() <= 1e-6), "same initial weights (up to rounding)");
        for (k, batch) in batches.iter().enumerate() {
            let (a, ta) = fused.gradient_step(batch, 1e-3).unwrap();
            let (c, tc) = burn.gradient_step(batch, 1e-3).unwrap();
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * y.abs().max(1e-3);
            assert!(
                close(a.loss, c.loss) && close(a.grad_norm, c.grad_norm) && close(a.q_mean, c.q_mean),
                "{k}: {a:?} {c:?}"
            );
            assert_eq!(ta.len(), tc.len());
            if k % 5 == 4 {
                fused.update_target();
                burn.update_target();
            }
        }
        burn.refresh_policy();
        let (qa, qb) = (fused.q_values(&probe), burn.q_values(&probe));
        let scale = qb.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let worst = qa.iter().zip(&qb).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-5 * scale.max(1.0), "Q-values differ by {worst} (scale {scale})");
        // Checkpoints: the same arrays (optimizer moments and step counts), and the fused run's
        // weights load into a burn-path agent with the same Q-values.
        use rlox_deep::OffPolicyAgent;
        let save = |agent: &Dqn| {
            let dir = tempfile::tempdir().unwrap();
            let ckpt = CheckpointDir::new(dir.path());
            let mut blobs = Default::default();
            let mut optimizers = Default::default();
            ckpt.save(1, &(), |w| agent.save(w, &mut blobs, &mut optimizers).map(|_| ())).unwrap();
            (ckpt.latest().unwrap(), blobs, optimizers, dir)
        };
        let (fused_dir, bf, of, _d1) = save(&fused);
        let (_, bb, ob, _d2) = save(&burn);
        assert_eq!(of, ob, "optimizer step counts");
        assert_eq!(bf.keys().collect::<Vec<_>>(), bb.keys().collect::<Vec<_>>());
        for (name, (_, v)) in &bf {
            let w = &bb[name].1;
            let worst = v.iter().zip(w).fold(0.0f32, |m, (x, y)| m.max((x - y).abs() / y.abs().max(1e-4)));
            assert!(worst < 1e-3, "{name}: relative difference {worst}");
        }
        let mut other = Dqn::new(obs_dim, n_actions, &DqnConfig { fused: false, ..config.clone() }, &r).unwrap();
        other.set_q_net(rlox_deep::checkpoint::load_module(&fused_dir, "q_net", other.q_net()).unwrap());
        let qo = other.q_values(&probe);
        let worst = qa.iter().zip(&qo).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-5 * scale.max(1.0), "reloaded Q-values differ by {worst}");
    }
}
