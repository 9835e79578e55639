"""The Stable-Baselines3 adapter: SB3's env checker, VecEnv semantics, and PPO training unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_IDS

import rlox
from rlox.sb3 import make_vec_env

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_sb3_check_env_passes(env_id: str) -> None:
    sb3_check_env(rlox.make(env_id), warn=True)


def test_vec_env_semantics_match_sb3s_dummy_vec_env() -> None:
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    n, seed = 4, 11
    ours = make_vec_env("CartPole-v1", n, seed=seed)
    ref = sb3_make_vec_env(lambda: rlox.make("CartPole-v1"), n, seed=seed)  # SB3's DummyVecEnv + Monitor
    assert np.array_equal(ours.reset(), ref.reset())
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(600):
        a = rng.integers(2, size=n)
        o, r, d, infos = ours.step(a)
        ro, rr, rd, rinfos = ref.step(a)
        assert np.array_equal(o, ro) and np.array_equal(r, rr) and np.array_equal(d, rd)
        assert r.dtype == rr.dtype == np.float32
        for i, (info, rinfo) in enumerate(zip(infos, rinfos)):
            assert info["TimeLimit.truncated"] == rinfo["TimeLimit.truncated"]
            if d[i]:
                episodes += 1
                assert np.array_equal(info["terminal_observation"], rinfo["terminal_observation"])
                assert info["episode"]["r"] == rinfo["episode"]["r"] and info["episode"]["l"] == rinfo["episode"]["l"]
    assert episodes >= 10


def test_ppo_trains_on_the_adapter_unchanged() -> None:
    from stable_baselines3 import PPO

    env = make_vec_env("CartPole-v1", 8, seed=0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    assert len(model.ep_info_buffer) > 0, "episode statistics reach SB3's logger"


@pytest.mark.slow
def test_ppo_with_the_zoo_settings_solves_cartpole() -> None:
    """rl-baselines3-zoo's PPO CartPole-v1 hyperparameters on 8 rlox envs: mean return >= 475."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)

    def linear(start: float):  # the zoo's lin_<start> schedule
        return lambda progress: progress * start

    env = make_vec_env("CartPole-v1", 8, seed=0)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(0.001),
        clip_range=linear(0.2),
        seed=0,
        device="cpu",
    )
    model.learn(total_timesteps=100_000)
    mean, std = evaluate_policy(
        model, make_vec_env("CartPole-v1", 1, seed=1000), n_eval_episodes=20, deterministic=True
    )
    print(f"SB3 PPO (zoo settings, seed 0) on rlox.sb3.make_vec_env('CartPole-v1', 8): {mean:.1f} +- {std:.1f}")
    assert mean >= 475, f"mean return {mean} +- {std}"
