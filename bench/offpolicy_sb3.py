"""DDPG, TD3 and SAC on Pendulum-v1: Stable-Baselines3 against rlox, same settings, single-threaded, in one run.

Creates bench/.venv-offpolicy (stable-baselines3, gymnasium==1.4.0, torch: the CPU wheel from
download.pytorch.org, else PyPI's) on first use, then, with OMP_NUM_THREADS=1, RAYON_NUM_THREADS=1
and torch.set_num_threads(1), for each algorithm and seed:
  1. trains SB3's algorithm with rl-baselines3-zoo's Pendulum-v1 hyper-parameters
     (td3.yml / ddpg.yml: 20000 steps, lr 1e-3, buffer 200000, learning_starts 10000, gamma 0.98,
     normal action noise sigma 0.1, train_freq 1, gradient_steps 1, net_arch [400, 300];
      sac.yml: 20000 steps, lr 1e-3, SB3's other SAC defaults), evaluating deterministically every
     1000 env steps on 5 episodes (inside the timed loop, as rlox does) and 10 episodes at the end;
  2. runs rlox with the same settings (its defaults for these algorithms):
     `target/release/rlox train --algo ALGO --env Pendulum-v1 --seed S --total-steps N --format json`
     (built beforehand, so compilation is not timed; rlox also writes checkpoints at each evaluation);
  3. when `sbx` imports (SBX, Stable-Baselines3 on JAX: `pip install sbx-rl` into the venv), trains SBX's
     algorithm with the same settings and evaluation, XLA on one thread (its compilation inside its time);
and prints wall time, env steps per second, the first env step at which the periodic evaluation
reached -200 (the acceptance threshold), the final evaluation, and the rlox/SB3 and rlox/SBX speed ratios.
Pin the whole run to one core (`taskset -c 1`).

Usage: python3 bench/offpolicy_sb3.py [--algos td3 ddpg sac] [--seeds 0] [--total-steps 20000]
                                      [--skip-sb3 ALGO ...] [--skip-rlox] [--no-build]
       python3 bench/offpolicy_sb3.py --env MountainCarContinuous-v0 --algos sac --total-steps 50000
         SAC with rl-baselines3-zoo's MountainCarContinuous-v0 settings (sac.yml: lr 3e-4, buffer 50000,
         batch 512, ent_coef 0.1, train_freq 32, gradient_steps 32, gamma 0.9999, tau 0.01, learning_starts 0,
         net_arch [64, 64], gSDE with log_std_init -3.67; rlox runs configs/sac_mountaincar_continuous.toml,
         the same settings); evaluation every 5000 steps, threshold 90.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-offpolicy"
VENV_PY = VENV / "bin" / "python"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
THRESHOLD = -200.0
EVAL_FREQ = 1000
EVAL_EPISODES = 5

ZOO_TD3_PENDULUM = dict(
    learning_rate=1e-3,
    buffer_size=200_000,
    learning_starts=10_000,
    gamma=0.98,
    train_freq=1,
    gradient_steps=1,
    policy_kwargs=dict(net_arch=[400, 300]),
)
ZOO_SAC_PENDULUM = dict(learning_rate=1e-3)
ZOO_SAC_MCC = dict(learning_rate=3e-4, buffer_size=50_000, batch_size=512, ent_coef=0.1, train_freq=32,
                   gradient_steps=32, gamma=0.9999, tau=0.01, learning_starts=0, use_sde=True,
                   policy_kwargs=dict(log_std_init=-3.67, net_arch=[64, 64]))
MCC = "MountainCarContinuous-v0"
SETTINGS = {"Pendulum-v1": dict(threshold=-200.0, eval_freq=1000), MCC: dict(threshold=90.0, eval_freq=5000)}
ENV_ID = "Pendulum-v1"


def ensure_venv():
    """Create the venv if needed and re-run this script inside it, single-threaded."""
    if pathlib.Path(sys.prefix).resolve() == VENV.resolve() and os.environ.get("OMP_NUM_THREADS") == "1":
        return
    if not VENV_PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    check = subprocess.run([str(VENV_PY), "-c", "import stable_baselines3, torch, gymnasium"], capture_output=True)
    if check.returncode != 0:
        print("installing torch (CPU wheel), stable-baselines3, gymnasium ...", flush=True)
        cpu = subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "--index-url",
                              "https://download.pytorch.org/whl/cpu", "torch"])
        if cpu.returncode != 0:
            subprocess.check_call([str(VENV_PY), "-m", "pip", "install", "-q", "torch"])
        subprocess.check_call([str(VENV_PY), "-m", "pip", "install", "-q", "gymnasium==1.4.0", "stable-baselines3"])
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.execve(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]], env)


def have_sbx():
    try:
        import sbx  # noqa: F401
    except ImportError:
        return False
    return True


def run_sbx(algo, seed, total_steps):
    return run_sb3(algo, seed, total_steps, jax=True)


def run_sb3(algo, seed, total_steps, jax=False):
    import gymnasium as gym
    import numpy as np
    import torch

    if jax:
        from sbx import DDPG, SAC, TD3
    else:
        from stable_baselines3 import DDPG, SAC, TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(1)
    device = {} if jax else {"device": "cpu"}
    env = gym.make(ENV_ID)
    eval_env = Monitor(gym.make(ENV_ID))
    eval_freq = SETTINGS[ENV_ID]["eval_freq"]
    if ENV_ID == MCC:
        if algo != "sac":
            raise SystemExit("only SAC has MountainCarContinuous-v0 settings here")
        model = SAC("MlpPolicy", env, seed=seed, verbose=0, **device, **ZOO_SAC_MCC)
    elif algo == "sac":
        model = SAC("MlpPolicy", env, seed=seed, verbose=0, **device, **ZOO_SAC_PENDULUM)
    else:
        cls = TD3 if algo == "td3" else DDPG
        noise = NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1))
        model = cls("MlpPolicy", env, seed=seed, verbose=0, action_noise=noise, **device, **ZOO_TD3_PENDULUM)

    history = []

    class Evaluate(BaseCallback):
        def _on_step(self):
            if self.num_timesteps % eval_freq == 0:
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
                history.append((self.num_timesteps, float(mean)))
            return True

    start = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=Evaluate())
    wall = time.perf_counter() - start
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return dict(wall_seconds=wall, steps_per_second=total_steps / wall, eval_return_mean=float(mean),
                eval_return_std=float(std), eval_history=history)


def cargo_env():
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    return env


def build_rlox():
    subprocess.check_call(["cargo", "build", "--release", "-p", "rlox-cli"], cwd=ROOT, env=cargo_env())


def rlox_binary():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(pathlib.Path(target) / "release" / "rlox")


def run_rlox(algo, seed, total_steps):
    with tempfile.TemporaryDirectory() as runs:
        config = ["configs/sac_mountaincar_continuous.toml"] if ENV_ID == MCC else []
        cmd = [rlox_binary(), "train", *config, "--algo", algo, "--env", ENV_ID, "--seed", str(seed),
               "--total-steps", str(total_steps), "--runs-dir", runs, "--format", "json"]
        out = subprocess.run(cmd, cwd=ROOT, env=cargo_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"rlox run failed:\n{out.stderr}")
    return json.loads(out.stdout)


def first_at(history, threshold):
    return next((int(s) for s, r in history if r >= threshold), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", nargs="+", default=["td3", "ddpg", "sac"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--total-steps", type=int, default=20_000)
    ap.add_argument("--skip-sb3", nargs="*", default=[], help="algorithms not to run with SB3 (none: all)")
    ap.add_argument("--skip-sbx", action="store_true")
    ap.add_argument("--skip-rlox", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="use the rlox binary already built")
    ap.add_argument("--env", default="Pendulum-v1", choices=sorted(SETTINGS))
    args = ap.parse_args()
    global ENV_ID
    ENV_ID = args.env
    threshold = SETTINGS[ENV_ID]["threshold"]
    ensure_venv()

    if not args.skip_rlox and not args.no_build:
        build_rlox()
    rows = []
    for algo in args.algos:
        for seed in args.seeds:
            contestants = (
                ("rlox", run_rlox, args.skip_rlox),
                ("sb3", run_sb3, algo in args.skip_sb3),
                ("sbx", run_sbx, args.skip_sbx or not have_sbx()),
            )
            for name, fn, skip in contestants:
                if skip:
                    continue
                print(f"running {name} {algo} seed {seed} ({args.total_steps} steps) ...", flush=True)
                r = fn(algo, seed, args.total_steps)
                rows.append((name, algo, seed, r))
                print(json.dumps({"impl": name, "algo": algo, "seed": seed,
                                  **{k: r[k] for k in ("wall_seconds", "steps_per_second", "eval_return_mean",
                                                       "eval_return_std", "eval_history")}}), flush=True)

    print()
    print(f"{ENV_ID}, zoo settings, {args.total_steps} env steps, single-threaded; "
          f"evaluation every {SETTINGS[ENV_ID]['eval_freq']} steps ({EVAL_EPISODES} episodes)")
    print(f"{'algo':5} {'impl':5} {'seed':>4} {'wall s':>9} {'steps/s':>8} {'steps to ' + str(threshold):>14} "
          f"{'final eval':>16}")
    for name, algo, seed, r in rows:
        ev = f"{r['eval_return_mean']:.1f} +- {r['eval_return_std']:.1f}"
        reach = first_at(r["eval_history"], threshold)
        print(f"{algo:5} {name:5} {seed:>4} {r['wall_seconds']:>9.1f} {r['steps_per_second']:>8.1f} "
              f"{str(reach):>14} {ev:>16}")
    for algo in args.algos:
        sps = {n: [r["steps_per_second"] for m, a, _, r in rows if m == n and a == algo] for n in ("sb3", "sbx", "rlox")}
        mean = {k: sum(v) / len(v) for k, v in sps.items() if v}
        for peer in ("sb3", "sbx"):
            if peer in mean and "rlox" in mean:
                print(f"{algo}: speed ratio rlox/{peer} (mean steps/s): {mean['rlox'] / mean[peer]:.2f}x")


if __name__ == "__main__":
    main()
