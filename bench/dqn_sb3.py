"""DQN on CartPole-v1: Stable-Baselines3 against rlox, same settings, single-threaded, in one run.

Creates bench/.venv (stable-baselines3, gymnasium==1.4.0, torch from PyPI) on first use, then, with
OMP_NUM_THREADS=1 and torch.set_num_threads(1), for each seed:
  1. trains SB3's DQN with rl-baselines3-zoo's CartPole-v1 hyper-parameters (hyperparams/dqn.yml:
     lr 2.3e-3, batch 64, buffer 100000, learning_starts 1000, gamma 0.99, target_update_interval 10,
     train_freq 256, gradient_steps 128, exploration_fraction 0.16, exploration_final_eps 0.04,
     net_arch [256, 256]) and evaluates it greedily for 10 episodes;
  2. runs rlox's DQN with the same settings (its defaults):
     `cargo run --release -p rlox-deep --example dqn_cartpole -- --seed S --total-steps N`
     (built beforehand, so compilation is not timed);
  3. when `sbx` (SBX, Stable-Baselines3 on JAX: `pip install sbx-rl` into the venv) imports, trains its DQN
     with the same settings, XLA on one thread (XLA_FLAGS below; its compilation is inside its time);
and prints wall time, env steps per second, the final evaluation and the env steps at which the mean return
of the last 100 training episodes (SB3's rollout/ep_rew_mean) first reached 195 and 475 side by side, with the
rlox/SB3 and rlox/SBX speed ratios. Wall time covers training only (no periodic evaluation in any).
Pin the whole run to one core (`taskset -c 1`).

Usage: python3 bench/dqn_sb3.py [--seeds 0 1 2] [--total-steps 50000] [--skip-sb3] [--skip-sbx] [--skip-rlox]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
VENV_PY = VENV / "bin" / "python"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")

ZOO_CARTPOLE = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)


def ensure_venv():
    """Create the venv if needed and re-run this script inside it, single-threaded."""
    if pathlib.Path(sys.prefix).resolve() == VENV.resolve() and os.environ.get("OMP_NUM_THREADS") == "1":
        return
    if not VENV_PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    check = subprocess.run([str(VENV_PY), "-c", "import stable_baselines3, torch, gymnasium"], capture_output=True)
    if check.returncode != 0:
        print("installing stable-baselines3, gymnasium, torch (large) ...", flush=True)
        subprocess.check_call(
            [str(VENV_PY), "-m", "pip", "install", "-q", "gymnasium==1.4.0", "numpy", "torch", "stable-baselines3"]
        )
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.execve(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]], env)


def run_sb3(seed, total_steps, jax=False):
    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    if jax:
        from sbx import DQN
    else:
        from stable_baselines3 import DQN
    torch.set_num_threads(1)
    env = gym.make("CartPole-v1")
    device = {} if jax else {"device": "cpu"}
    model = DQN("MlpPolicy", env, seed=seed, verbose=0, **device, **ZOO_CARTPOLE)
    episodes = []

    class Episodes(BaseCallback):
        """Records (env step, return) of every training episode (Monitor's info at its end)."""

        def _on_step(self):
            info = self.locals["infos"][0].get("episode")
            if info is not None:
                episodes.append((self.num_timesteps, float(info["r"])))
            return True

    start = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=Episodes())
    wall = time.perf_counter() - start
    mean, std = evaluate_policy(model, Monitor(gym.make("CartPole-v1")), n_eval_episodes=10, deterministic=True)
    return dict(wall_seconds=wall, steps_per_second=total_steps / wall, eval_return_mean=float(mean),
                eval_return_std=float(std), **solve_steps(episodes))


def solve_steps(episodes):
    """Env steps at which the mean return of the last 100 training episodes (SB3's rollout/ep_rew_mean)
    first reached 195 and 475 (None: never), and its value at the end."""
    out, recent = {"steps_to_195": None, "steps_to_475": None}, []
    for step, ret in episodes:
        recent = (recent + [ret])[-100:]
        mean = sum(recent) / len(recent)
        for thr in (195, 475):
            if out[f"steps_to_{thr}"] is None and mean >= thr:
                out[f"steps_to_{thr}"] = step
    out["final_ep_rew_mean"] = sum(recent) / len(recent) if recent else None
    return out


def have_sbx():
    try:
        import sbx  # noqa: F401
    except ImportError:
        return False
    return True


def run_sbx(seed, total_steps):
    return run_sb3(seed, total_steps, jax=True)


def cargo_env():
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    return env


def build_rlox():
    subprocess.check_call(
        ["cargo", "build", "--release", "-p", "rlox-deep", "--example", "dqn_cartpole"], cwd=ROOT, env=cargo_env()
    )


def run_rlox(seed, total_steps):
    cmd = ["cargo", "run", "-q", "--release", "-p", "rlox-deep", "--example", "dqn_cartpole", "--",
           "--seed", str(seed), "--total-steps", str(total_steps)]
    out = subprocess.run(cmd, cwd=ROOT, env=cargo_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"rlox run failed:\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {**r["summary"], **solve_steps([tuple(e) for e in r["episodes"]])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--total-steps", type=int, default=50_000)
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument("--skip-sbx", action="store_true")
    ap.add_argument("--skip-rlox", action="store_true")
    args = ap.parse_args()
    ensure_venv()

    if not args.skip_rlox:
        build_rlox()
    rows = []
    for seed in args.seeds:
        contestants = (
            ("sb3", run_sb3, args.skip_sb3),
            ("sbx", run_sbx, args.skip_sbx or not have_sbx()),
            ("rlox", run_rlox, args.skip_rlox),
        )
        for name, fn, skip in contestants:
            if skip:
                continue
            print(f"running {name} seed {seed} ({args.total_steps} steps) ...", flush=True)
            r = fn(seed, args.total_steps)
            rows.append((name, seed, r))
            print(json.dumps({"impl": name, "seed": seed, **{k: v for k, v in r.items() if k != "eval_history"}}),
                  flush=True)

    print()
    print(f"DQN CartPole-v1, zoo settings, {args.total_steps} env steps, single-threaded")
    print(f"{'impl':6} {'seed':>4} {'wall s':>9} {'steps/s':>9} {'eval return':>16} {'to 195':>7} {'to 475':>7}"
          f" {'final ep_rew_mean':>18}")
    for name, seed, r in rows:
        ev = f"{r['eval_return_mean']:.1f} +- {r['eval_return_std']:.1f}"
        s195, s475 = (str(r[k]) if r[k] is not None else "-" for k in ("steps_to_195", "steps_to_475"))
        print(f"{name:6} {seed:>4} {r['wall_seconds']:>9.2f} {r['steps_per_second']:>9.0f} {ev:>16} {s195:>7} {s475:>7}"
              f" {r['final_ep_rew_mean']:>18.1f}")
    sps = {name: [r["steps_per_second"] for n, _, r in rows if n == name] for name in ("sb3", "sbx", "rlox")}
    mean = {k: sum(v) / len(v) for k, v in sps.items() if v}
    for peer in ("sb3", "sbx"):
        if peer in mean and "rlox" in mean:
            print(f"speed ratio rlox/{peer} (mean steps/s): {mean['rlox'] / mean[peer]:.2f}x")


if __name__ == "__main__":
    main()
