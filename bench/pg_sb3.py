"""PPO on CartPole-v1 and Acrobot-v1: Stable-Baselines3 against rlox, same settings, single-threaded, in one run.

Creates bench/.venv-pg (stable-baselines3, gymnasium==1.4.0, torch from PyPI) on first use, then, with
OMP_NUM_THREADS=1 / RAYON_NUM_THREADS=1 and torch.set_num_threads(1), for each env and seed:
  1. trains SB3's PPO with rl-baselines3-zoo's hyper-parameters (hyperparams/ppo.yml):
     CartPole-v1: n_envs 8, n_steps 32, batch 256, gae_lambda 0.8, gamma 0.98, n_epochs 20,
                  ent_coef 0, lr lin_1e-3, clip lin_0.2, 1e5 steps;
     Acrobot-v1:  n_envs 16, n_steps 256, gae_lambda 0.94, gamma 0.99, n_epochs 4, ent_coef 0, 1e6 steps,
                  SB3 defaults otherwise (batch 64, lr 3e-4, clip 0.2); the zoo's VecNormalize is left
                  out on BOTH sides (rlox has no normaliser yet);
     and records the env steps at which rollout/ep_rew_mean (mean of the last 100 training episodes)
     first reaches the threshold (CartPole 475, Acrobot -100); then a 10-episode deterministic evaluation;
  2. runs rlox's PPO with the same settings:
     `target/release/examples/ppo_classic --env ENV --seed S --total-steps N`
     (built beforehand with `cargo build --release -p rlox-deep -p rlox-cli --example ppo_classic`);
  3. when `sbx` (SBX, Stable-Baselines3 on JAX: `pip install sbx-rl` into the venv) imports, trains its PPO
     with the same settings, XLA on one thread (its compilation inside its time);
and prints env steps to threshold, wall time, env steps per second and the rlox/SB3 and rlox/SBX speed
ratios. Pin the whole run to one core (`taskset -c 1`).
Both use the same vectorised setup (DummyVecEnv of n_envs envs / rlox's ResumableVecEnv). Wall time
is the training loop only.

Usage: python3 bench/pg_sb3.py [--envs CartPole-v1 Acrobot-v1] [--seeds 0] [--total-steps N] [--skip-sb3] [--skip-sbx]
       [--skip-rlox]
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
VENV = ROOT / "bench" / ".venv-pg"
VENV_PY = VENV / "bin" / "python"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")

ZOO = {
    "CartPole-v1": dict(
        n_envs=8, total=100_000, threshold=475.0,
        kwargs=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                    learning_rate="lin_1e-3", clip_range="lin_0.2"),
    ),
    "Acrobot-v1": dict(
        n_envs=16, total=1_000_000, threshold=-100.0,
        kwargs=dict(n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0),
    ),
}


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


def linear(start):
    return lambda progress_remaining: progress_remaining * start


def run_sb3(env_id, seed, total_steps, jax=False):
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    if jax:
        from sbx import PPO
    else:
        from stable_baselines3 import PPO
    torch.set_num_threads(1)
    z = ZOO[env_id]
    kwargs = dict(z["kwargs"])
    for key in ("learning_rate", "clip_range"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = linear(float(kwargs[key][4:]))
    threshold = z["threshold"]

    class FirstReach(BaseCallback):
        def __init__(self):
            super().__init__()
            self.reached = None

        def _on_step(self):
            return True

        def _on_rollout_end(self):
            buf = self.model.ep_info_buffer
            if self.reached is None and buf:
                if sum(e["r"] for e in buf) / len(buf) >= threshold:
                    self.reached = self.num_timesteps

    env = make_vec_env(env_id, n_envs=z["n_envs"], seed=seed)
    device = {} if jax else {"device": "cpu"}
    model = PPO("MlpPolicy", env, seed=seed, verbose=0, **device, **kwargs)
    cb = FirstReach()
    start = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=cb)
    wall = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    steps = model.num_timesteps
    return dict(steps_to_threshold=cb.reached, env_steps=steps, wall_seconds=wall, steps_per_second=steps / wall,
                eval_return_mean=float(mean), eval_return_std=float(std))


def have_sbx():
    try:
        import sbx  # noqa: F401
    except ImportError:
        return False
    return True


def run_sbx(env_id, seed, total_steps):
    return run_sb3(env_id, seed, total_steps, jax=True)


def cargo_env():
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    return env


def build_rlox():
    # Built together with rlox-cli so that burn's features are those of the rlox binary (and of a
    # workspace build): the example then reuses the same compiled burn.
    subprocess.check_call(
        ["cargo", "build", "--release", "-p", "rlox-deep", "-p", "rlox-cli", "--example", "ppo_classic"],
        cwd=ROOT, env=cargo_env(),
    )


def example_binary():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "examples" / "ppo_classic"


def run_rlox(env_id, seed, total_steps):
    cmd = [str(example_binary()), "--env", env_id, "--seed", str(seed), "--total-steps", str(total_steps)]
    out = subprocess.run(cmd, cwd=ROOT, env=cargo_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"rlox run failed:\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    s = r["summary"]
    return dict(steps_to_threshold=r["steps_to_threshold"], env_steps=s["env_steps"], wall_seconds=s["wall_seconds"],
                steps_per_second=s["steps_per_second"], eval_return_mean=s["eval_return_mean"],
                eval_return_std=s["eval_return_std"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=["CartPole-v1", "Acrobot-v1"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--total-steps", type=int, default=None, help="override the zoo's budget")
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument("--skip-sbx", action="store_true")
    ap.add_argument("--skip-rlox", action="store_true")
    args = ap.parse_args()
    ensure_venv()

    if not args.skip_rlox:
        build_rlox()
    rows = []
    for env_id in args.envs:
        total = args.total_steps or ZOO[env_id]["total"]
        for seed in args.seeds:
            for name, fn, skip in (
                ("sb3", run_sb3, args.skip_sb3),
                ("sbx", run_sbx, args.skip_sbx or not have_sbx()),
                ("rlox", run_rlox, args.skip_rlox),
            ):
                if skip:
                    continue
                print(f"running {name} {env_id} seed {seed} ({total} steps) ...", flush=True)
                r = fn(env_id, seed, total)
                rows.append((env_id, name, seed, r))
                print(json.dumps({"impl": name, "env": env_id, "seed": seed, **r}), flush=True)

    print()
    print("PPO, rl-baselines3-zoo settings, single-threaded")
    print(f"{'env':12} {'impl':5} {'seed':>4} {'steps to thr':>12} {'wall s':>8} {'steps/s':>8} {'eval return':>16}")
    for env_id, name, seed, r in rows:
        ev = f"{r['eval_return_mean']:.1f} +- {r['eval_return_std']:.1f}"
        thr = "-" if r["steps_to_threshold"] is None else str(r["steps_to_threshold"])
        print(f"{env_id:12} {name:5} {seed:>4} {thr:>12} {r['wall_seconds']:>8.1f} {r['steps_per_second']:>8.0f} {ev:>16}")
    for env_id in args.envs:
        sps = {n: [r["steps_per_second"] for e, n2, _, r in rows if e == env_id and n2 == n]
               for n in ("sb3", "sbx", "rlox")}
        mean = {k: sum(v) / len(v) for k, v in sps.items() if v}
        for peer in ("sb3", "sbx"):
            if peer in mean and "rlox" in mean:
                print(f"{env_id}: speed ratio rlox/{peer} (mean steps/s): {mean['rlox'] / mean[peer]:.2f}x")


if __name__ == "__main__":
    main()
