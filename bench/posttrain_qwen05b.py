#!/usr/bin/env python3
"""rlox-posttrain against TRL 1.16 on the Qwen2.5-0.5B-shaped models (random weights, tools/qwen_shapes.py).

    RAYON_NUM_THREADS=1 bench/.venv-trl/bin/python bench/posttrain_qwen05b.py [--steps 3] [--threads 1]
    RAYON_NUM_THREADS=1 bench/.venv-trl/bin/python bench/posttrain_qwen05b.py --memory-24   # DPO peak memory, 24 layers

Venv as in bench/posttrain_trl.py (CPU torch, transformers, trl==1.16.*); the rlox side is
`target/release/examples/posttrain_bench` (`cargo build --release -p rlox-posttrain --example posttrain_bench`).
The models live in bench/.models/ (made on first use); the tokenizer is the tiny fixture's (its ids are below
300, so they are valid ids of the 151,936-entry vocabulary).

Default run, 2-layer model (166M parameters, 136M of them the tied embedding), one thread on both sides
(`taskset -c 1`, `torch.set_num_threads(1)`, `RAYON_NUM_THREADS=1`):
1. parity at step 0: DPO (8 pairs, beta 0.1, the policy its own reference: TRL's loss, rewards/* and logps/*
   against rlox's on TRL's token ids) and GRPO (a fixed rollout of 2 prompts x 4 completions of 12 tokens,
   beta 0.04, loss_type dapo: TRL's loss and per-token log-probs);
2. speed: DPO step on 8 pairs of 128 tokens (prompt ~64 + completion, cut to 128 by TRL), AdamW;
   GRPO step with 4 prompts x 8 completions x 128 new tokens (EOS ignored, generation included), beta 0,
   AdamW. Median of --steps steps after one warm-up step, with the process's peak resident memory.

`--memory-24`: one DPO step (same batch) on the 24-layer model on each side, in separate processes, and their
peak resident memory (VmHWM); rlox with gradient checkpointing and the chunked LM head, TRL with its defaults
(no gradient checkpointing) and, as a second TRL row, `gradient_checkpointing=True`. It needs ~20 GB free for
TRL's default row: the script checks MemAvailable first and skips a row that would not fit.

Prints a table with the CPU and load average; writes bench/out/posttrain_qwen05b.json.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch  # noqa: E402

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from posttrain_trl import FIX, OUT, ROOT, TOK_FILES, common, grpo_inputs, text, timed_train  # noqa: E402


def status_mib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def mem_available_gib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    return 0.0


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def load_avg():
    return open("/proc/loadavg").read().split()[:3]


def model_dir(layers):
    d = os.path.join(ROOT, "bench", ".models", f"qwen05b-{layers}l")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "qwen_shapes.py"), "make", "--layers", str(layers),
                        "--out", d], check=True)
    for f in TOK_FILES:
        shutil.copy(os.path.join(FIX, f), d)
    return d


def dpo_rows(seed, n=8):
    """Prompts of ~64 tokens (20 words of the tiny tokenizer) and longer completions: with max_length 128,
    every chosen and rejected sequence is cut to exactly 128 tokens."""
    rng = torch.Generator().manual_seed(seed)
    return [{"prompt": text(rng, 20), "chosen": " " + text(rng, 25), "rejected": " " + text(rng, 25)}
            for _ in range(n)]


# 128 tokens per sequence: TRL 1.16's collator cuts prompt + completion to max_length (keep_start); rlox is
# given TRL's untruncated ids and the same max_length, and cuts them the same way.
DPO_MAX_LENGTH = 128


def dpo_args(out, steps, **kw):
    return DPOConfig(**common(out, per_device_train_batch_size=8, beta=0.1, max_length=DPO_MAX_LENGTH,
                              learning_rate=1e-6, max_steps=steps, **kw))


def dpo_parity_and_case(path, tmp):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = dpo_rows(0)
    tr = DPOTrainer(model=model, args=dpo_args(tmp, 1), train_dataset=Dataset.from_list(rows), processing_class=tok)
    feats = [tr.train_dataset[i] for i in range(len(rows))]
    batch = tr.data_collator(feats)
    model.train()
    with torch.no_grad():
        loss = tr.compute_loss(model, batch)
    metrics = {k: v[-1] for k, v in tr._metrics["train"].items() if k.startswith(("rewards/", "logps/"))}
    pairs = [{"prompt": f["prompt_ids"], "chosen": f["chosen_ids"], "rejected": f["rejected_ids"]} for f in feats]
    tokens = int(batch["attention_mask"].sum())
    return {"loss": float(loss), "metrics": metrics, "pairs": pairs, "tokens": tokens}


def grpo_parity(path, tmp):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    prompts = ["Compute 3+4.", "Compute 12-5 quickly please."]
    g, length = 4, 12
    enc, pid, pmask, comp = grpo_inputs(model, tok, prompts, g, length, seed=1)
    cmask = torch.ones_like(comp)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.25])
    grouped = rewards.view(-1, g)
    adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
    args = GRPOConfig(**common(tmp, per_device_train_batch_size=8, num_generations=g, max_completion_length=length,
                               beta=0.04, loss_type="dapo", learning_rate=1e-6))
    tr = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=args,
                     train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), processing_class=tok)
    tr.current_gradient_accumulation_steps = 1
    model.train()
    full, fmask = torch.cat([pid, comp], 1), torch.cat([pmask, cmask], 1)
    with torch.no_grad():
        ref = tr._get_per_token_logps_and_entropies(tr.ref_model if tr.ref_model is not None else model, full, fmask,
                                                    comp.shape[1])[0]
        inputs = {"prompt_ids": pid, "prompt_mask": pmask, "completion_ids": comp, "completion_mask": cmask,
                  "advantages": adv, "ref_per_token_logps": ref, "num_items_in_batch": cmask.sum(),
                  "old_per_token_logps": None}
        loss = tr._compute_loss(model, inputs)
        logps = tr._get_per_token_logps_and_entropies(model, full, fmask, comp.shape[1])[0]
    return {"loss": float(loss), "per_token_logps": logps.tolist(), "mask": cmask.tolist(), "advantages": adv.tolist(),
            "prompt_ids": [enc[k // g] for k in range(comp.shape[0])],
            "completion_ids": [[int(t) for t in comp[k]] for k in range(comp.shape[0])]}


def trl_speed(path, tmp, steps):
    tok = AutoTokenizer.from_pretrained(path)
    rows = dpo_rows(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tr = DPOTrainer(model=model, args=dpo_args(os.path.join(tmp, "dpo"), steps + 1),
                    train_dataset=Dataset.from_list(rows * (steps + 2)), processing_class=tok)
    dpo_wall, dpo_cpu = timed_train(tr, steps)
    dpo_peak = status_mib("VmHWM:")
    del tr, model
    rng = torch.Generator().manual_seed(1)
    prompts = [text(rng, 12) for _ in range(4)]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    args = GRPOConfig(**common(os.path.join(tmp, "grpo"), per_device_train_batch_size=32, num_generations=8,
                               max_completion_length=128, beta=0.0, learning_rate=1e-6, max_steps=steps + 1,
                               generation_kwargs={"min_new_tokens": 128}))
    tr = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [float(len(c)) / 100 for c in completions]],
                     args=args, train_dataset=Dataset.from_list([{"prompt": p} for p in prompts] * (8 * (steps + 2))),
                     processing_class=tok)
    grpo_wall, grpo_cpu = timed_train(tr, steps)
    return {"dpo": {"seconds_per_step": dpo_wall, "cpu_seconds": dpo_cpu, "peak_rss_mib": dpo_peak},
            "grpo": {"seconds_per_step": grpo_wall, "cpu_seconds": grpo_cpu}, "grpo_prompts": prompts}


def run_rlox(path, case, steps, threads):
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples",
                       "posttrain_bench")
    case_path = os.path.join(OUT, f"case_{os.path.basename(path)}.json")
    json.dump(case, open(case_path, "w"))
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cores = "1" if threads == 1 else ",".join(map(str, range(threads)))
    out = subprocess.run(["taskset", "-c", cores, exe, path, case_path, str(steps)], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"rlox bench failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout)


def trl_dpo_memory(path, tmp, checkpointing):
    """One DPO step in this process; returns the peak resident memory (run in a fresh process)."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tr = DPOTrainer(model=model, args=dpo_args(tmp, 1, gradient_checkpointing=checkpointing),
                    train_dataset=Dataset.from_list(dpo_rows(0)), processing_class=tok)
    t = time.perf_counter()
    tr.train()
    return {"peak_rss_mib": status_mib("VmHWM:"), "seconds": time.perf_counter() - t}


def memory_24(a):
    path = model_dir(24)
    tmp = tempfile.mkdtemp()
    case = {"dpo": dpo_parity_and_case(path, tmp) | {"beta": 0.1, "learning_rate": 1e-6, "max_length": DPO_MAX_LENGTH},
            "dpo_only": True,
            "gradient_checkpointing": True, "memory_steps": 1}
    rows = {"cpu": cpu_name(), "load_avg_start": load_avg()}
    rows["rlox"] = run_rlox(path, case, 1, a.threads)["dpo_speed"]
    for ckpt, need in [(True, 12), (False, 20)]:
        key = f"trl_checkpointing_{ckpt}"
        if mem_available_gib() < need:
            rows[key] = {"skipped": f"MemAvailable {mem_available_gib():.1f} GiB < {need} GiB"}
            continue
        r = subprocess.run([sys.executable, __file__, "--trl-dpo-memory", path, str(int(ckpt))], capture_output=True,
                           text=True)
        rows[key] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-2000:]}
    rows["load_avg_end"] = load_avg()
    json.dump(rows, open(os.path.join(OUT, "posttrain_qwen05b_memory24.json"), "w"), indent=1)
    print(json.dumps(rows, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-24", action="store_true")
    ap.add_argument("--trl-dpo-memory", nargs=2, metavar=("MODEL", "CHECKPOINTING"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(OUT, exist_ok=True)
    if a.trl_dpo_memory:
        print(json.dumps(trl_dpo_memory(a.trl_dpo_memory[0], tempfile.mkdtemp(), a.trl_dpo_memory[1] == "1")))
        return
    if a.memory_24:
        memory_24(a)
        return
    path = model_dir(2)
    tmp = tempfile.mkdtemp()
    report = {"cpu": cpu_name(), "load_avg_start": load_avg(), "trl": __import__("trl").__version__,
              "torch": torch.__version__, "threads": a.threads}
    dp = dpo_parity_and_case(path, os.path.join(tmp, "p1"))
    gp = grpo_parity(path, os.path.join(tmp, "p2"))
    t0 = time.perf_counter()
    trl = trl_speed(path, os.path.join(tmp, "s"), a.steps)
    report["trl_speed_wall"] = time.perf_counter() - t0
    case = {"dpo": {"pairs": dp["pairs"], "beta": 0.1, "learning_rate": 1e-6, "max_length": DPO_MAX_LENGTH},
            "grpo": {"prompt_ids": gp["prompt_ids"], "completion_ids": gp["completion_ids"],
                     "advantages": gp["advantages"], "beta": 0.04, "epsilon": 0.2, "loss_type": "dapo",
                     "max_completion_length": 12, "temperature": 1.0, "prompt_texts": trl["grpo_prompts"],
                     "num_generations": 8, "prompts_per_step": 4, "speed_max_completion_length": 128,
                     "speed_beta": 0.0}}
    r = run_rlox(path, case, a.steps, a.threads)
    diffs = {"dpo_loss": abs(r["dpo_parity"]["loss"] - dp["loss"])}
    for k, v in dp["metrics"].items():
        diffs[k] = abs(r["dpo_parity"]["metrics"][k] - v)
    diffs["grpo_loss"] = abs(r["grpo_parity"]["loss"] - gp["loss"])
    c = r["grpo_parity"]["completion_len"]
    rl = r["grpo_parity"]["per_token_logps"]
    diffs["grpo_logps_max"] = max(abs(rl[k * c + j] - gp["per_token_logps"][k][j])
                                  for k in range(len(gp["mask"])) for j in range(c))
    report.update({"parity": {"trl": {"dpo_loss": dp["loss"], "dpo_metrics": dp["metrics"], "grpo_loss": gp["loss"]},
                              "rlox": {"dpo_loss": r["dpo_parity"]["loss"], "dpo_metrics": r["dpo_parity"]["metrics"],
                                       "grpo_loss": r["grpo_parity"]["loss"]}, "abs_diff": diffs},
                   "speed": {"trl": trl, "rlox": {"dpo": r["dpo_speed"], "grpo": r["grpo_speed"]}},
                   "load_avg_end": load_avg()})
    json.dump(report, open(os.path.join(OUT, "posttrain_qwen05b.json"), "w"), indent=1)
    print(f"CPU {report['cpu']}; load average {report['load_avg_start']} -> {report['load_avg_end']}; "
          f"TRL {report['trl']}, torch {report['torch']}, {a.threads} thread(s)")
    print(f"step-0 parity on the 2-layer Qwen2.5-0.5B-shaped model (absolute differences; DPO on {dp['tokens']} tokens):")
    for k, v in diffs.items():
        print(f"  {k:24s} {v:.2e}")
    print(f"speed (median of {a.steps} steps after a warm-up):")
    print(f"  {'':5s} {'TRL s/step':>11s} {'rlox s/step':>12s} {'rlox/TRL speed':>15s} {'TRL peak MiB':>13s} {'rlox peak MiB':>14s}")
    for m in ["dpo", "grpo"]:
        t, x = trl[m], r[f"{m}_speed"]
        print(f"  {m:5s} {t['seconds_per_step']:11.2f} {x['seconds_per_step']:12.2f} "
              f"{t['seconds_per_step'] / x['seconds_per_step']:15.2f} {t.get('peak_rss_mib', float('nan')):13.0f} "
              f"{x.get('peak_rss_mib', float('nan')):14.0f}")
    print(f"  rlox GRPO generation: {r['grpo_speed']['generation_seconds']:.2f} s of each step")


if __name__ == "__main__":
    main()
