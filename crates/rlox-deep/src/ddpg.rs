//! DDPG: Deep Deterministic Policy Gradient (Lillicrap et al. 2016).
//!
//! A deterministic actor `mu(s)` trained to maximise one critic `Q(s, mu(s))`, the critic trained
//! on `y = r + gamma (1 - terminated) Q'(s', mu'(s'))` from a replay buffer, Polyak-averaged
//! targets, and exploration noise added to the actor's action (Gaussian or Ornstein-Uhlenbeck,
//! [`crate::noise`]).
//!
//! Like Stable-Baselines3, whose `DDPG` is `TD3` with three settings overridden, DDPG here is
//! [`crate::td3::Td3`] with its config's DDPG defaults ([`ddpg_config`]): one critic, no
//! target-policy smoothing, a policy delay of 1, so each gradient step updates the critic, then the
//! actor, then both targets. The other defaults are rl-baselines3-zoo's `Pendulum-v1` entry of
//! `hyperparams/ddpg.yml`, which equals TD3's.

use crate::td3::{Td3, Td3Config};
use rlox_core::run::RunSettings;
use rlox_core::Result;

/// DDPG's config: TD3's, with DDPG's defaults ([`ddpg_config`]).
pub type DdpgConfig = Td3Config;

/// DDPG's defaults: TD3's with one critic (*SB3*: `n_critics=1`), no target-policy smoothing
/// (`target_policy_noise=0`, `target_noise_clip=0`) and no delay (`policy_delay=1`).
pub fn ddpg_config() -> Td3Config {
    Td3Config {
        n_critics: 1,
        policy_delay: 1,
        target_policy_noise: 0.0,
        target_noise_clip: 0.0,
        ..Td3Config::default()
    }
}

/// A fresh DDPG learner (a [`Td3`] reporting as `ddpg`).
pub fn ddpg(obs_dim: usize, act_dim: usize, config: &DdpgConfig, run: &RunSettings) -> Result<Td3> {
    Td3::build("ddpg", obs_dim, act_dim, config, run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseConfig;
    use crate::offpolicy::OffPolicyAgent;

    #[test]
    fn ddpg_is_td3_with_one_critic_no_smoothing_no_delay() {
        let c = ddpg_config();
        let t = Td3Config::default();
        assert_eq!((c.n_critics, c.policy_delay, c.target_policy_noise, c.target_noise_clip), (1, 1, 0.0, 0.0));
        assert_eq!(
            (c.buffer_size, c.learning_starts, c.gamma, c.net_arch.clone()),
            (t.buffer_size, t.learning_starts, t.gamma, t.net_arch)
        );
        let d = ddpg(3, 1, &DdpgConfig { net_arch: vec![8], ..c }, &RunSettings::default()).unwrap();
        assert_eq!(d.algo(), "ddpg");
        let e =
            ddpg(3, 1, &DdpgConfig { tau: 2.0, ..ddpg_config() }, &RunSettings::default()).err().unwrap().to_string();
        assert!(e.contains("ddpg.tau"), "{e}");
        let c: DdpgConfig = rlox_core::config::from_toml_str(
            "[action_noise]\nkind = \"ornstein-uhlenbeck\"\nsigma = 0.2\n",
            std::path::Path::new("ddpg.toml"),
        )
        .unwrap();
        assert_eq!(c.action_noise, NoiseConfig::OrnsteinUhlenbeck { sigma: 0.2, theta: 0.15, dt: 1e-2 });
    }
}
