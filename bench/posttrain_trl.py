#!/usr/bin/env python3
"""rlox-posttrain against TRL 1.16: step-0 parity on the tiny Qwen2 fixture and single-thread speed.

Setup (CPU; reuses a venv with torch + transformers and adds TRL):
    python3 -m venv bench/.venv-trl
    bench/.venv-trl/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    bench/.venv-trl/bin/pip install "trl==1.16.*" transformers
    cargo build --release -p rlox-posttrain --example posttrain_bench
    RAYON_NUM_THREADS=1 bench/.venv-trl/bin/python bench/posttrain_trl.py [--steps 5]

What it does, in one run:
1. Parity (crates/rlox-lm/tests/fixtures/qwen2_tied, TRL with use_cpu=True, bf16=False):
   * DPO: TRL tokenises 8 pairs of configs/data/prefs_tiny.jsonl and computes its step-0 loss and
     metrics (rewards/*, logps/*) with the model as its own reference; rlox gets TRL's token ids and
     computes the same; the script also checks that rlox's own tokenisation gives TRL's ids.
   * GRPO: a fixed rollout (2 prompts x 4 completions sampled once with torch, fixed advantages); TRL's
     `_compute_loss` (beta 0.04, loss_type dapo) against rlox's loss and per-token log-probs.
2. Speed, one thread on both sides, same model (a random 0.56M-parameter-class Qwen2 written by this
   script) and batch shapes: DPO seconds per step for 8 pairs of about 108 tokens; GRPO seconds per step
   for 2 prompts x 4 completions of 48 tokens (generation included; EOS ignored on both sides so every
   completion has 48 tokens). Median of --steps steps after one warm-up step.
Writes bench/out/posttrain_trl.json and prints a table.
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

torch.set_num_threads(1)
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM  # noqa: E402
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "crates", "rlox-lm", "tests", "fixtures", "qwen2_tied")
OUT = os.path.join(ROOT, "bench", "out")
TOK_FILES = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]
WORDS = ("the quick brown fox jumps over the lazy dog a policy maps states to actions rust is fast safe and fun "
         "language models predict the next token given the previous ones hello world how are you today").split()


def text(rng, n_words):
    return " ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (n_words,), generator=rng))


def common(out_dir, **kw):
    return dict(output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, report_to="none", logging_steps=1,
                save_strategy="no", seed=0, dataloader_num_workers=0, **kw)


def dpo_parity(tmp):
    tok = AutoTokenizer.from_pretrained(FIX)
    model = AutoModelForCausalLM.from_pretrained(FIX, dtype=torch.float32)
    rows = [json.loads(l) for l in open(os.path.join(ROOT, "configs", "data", "prefs_tiny.jsonl"))][:8]
    args = DPOConfig(**common(tmp, per_device_train_batch_size=8, beta=0.1, max_length=128, learning_rate=1e-6))
    tr = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    feats = [tr.train_dataset[i] for i in range(len(rows))]
    batch = tr.data_collator(feats)
    model.train()
    with torch.no_grad():
        loss = tr.compute_loss(model, batch)
    metrics = {k: v[-1] for k, v in tr._metrics["train"].items() if k.startswith(("rewards/", "logps/"))}
    # Reference log-probs: the reference is the initial model, so they equal logps/* per pair.
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    seq = (lp * batch["completion_mask"][:, 1:]).sum(1)
    n = len(rows)
    pairs = [{"prompt": f["prompt_ids"], "chosen": f["chosen_ids"], "rejected": f["rejected_ids"]} for f in feats]
    return {"loss": float(loss), "metrics": metrics, "ref_logps": [[float(seq[i]), float(seq[n + i])] for i in range(n)],
            "pairs": pairs, "rows": rows}


def grpo_inputs(model, tok, prompts, g, length, seed):
    """A fixed rollout: each prompt repeated g times (left-padded), completions sampled once (no EOS stop)."""
    torch.manual_seed(seed)
    enc = [tok(p)["input_ids"] for p in prompts]
    p_len = max(map(len, enc))
    pid, pmask = [], []
    for e in enc:
        for _ in range(g):
            pid.append([tok.pad_token_id] * (p_len - len(e)) + e)
            pmask.append([0] * (p_len - len(e)) + [1] * len(e))
    pid, pmask = torch.tensor(pid), torch.tensor(pmask)
    with torch.no_grad():
        out = model.generate(input_ids=pid, attention_mask=pmask, do_sample=True, max_new_tokens=length,
                             min_new_tokens=length, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=tok.pad_token_id)
    comp = out[:, p_len:]
    return enc, pid, pmask, comp


def grpo_parity(tmp):
    tok = AutoTokenizer.from_pretrained(FIX)
    model = AutoModelForCausalLM.from_pretrained(FIX, dtype=torch.float32)
    prompts = ["Compute 3+4.", "Compute 12-5 quickly please."]
    g, length = 4, 12
    enc, pid, pmask, comp = grpo_inputs(model, tok, prompts, g, length, seed=1)
    # Variable completion lengths through the mask: completion k keeps its first length - k % 5 tokens.
    cmask = torch.zeros_like(comp)
    for k in range(comp.shape[0]):
        cmask[k, : length - (k % 5)] = 1
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.25])
    grouped = rewards.view(-1, g)
    adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
    args = GRPOConfig(**common(tmp, per_device_train_batch_size=8, num_generations=g, max_completion_length=length,
                               beta=0.04, loss_type="dapo", learning_rate=1e-6))
    ds = Dataset.from_list([{"prompt": p} for p in prompts])
    tr = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=args,
                     train_dataset=ds, processing_class=tok)
    tr.current_gradient_accumulation_steps = 1  # set by Trainer.train(); we call the loss directly
    model.train()
    with torch.no_grad():
        ref = tr._get_per_token_logps_and_entropies(tr.ref_model if tr.ref_model is not None else model,
                                                    torch.cat([pid, comp], 1), torch.cat([pmask, cmask], 1),
                                                    comp.shape[1])[0]
    inputs = {"prompt_ids": pid, "prompt_mask": pmask, "completion_ids": comp, "completion_mask": cmask,
              "advantages": adv, "ref_per_token_logps": ref, "num_items_in_batch": cmask.sum(),
              "old_per_token_logps": None}
    with torch.no_grad():
        loss = tr._compute_loss(model, inputs)
        logps = tr._get_per_token_logps_and_entropies(model, torch.cat([pid, comp], 1), torch.cat([pmask, cmask], 1),
                                                      comp.shape[1])[0]
    comp_ids = [[int(t) for t, m in zip(comp[k], cmask[k]) if m] for k in range(comp.shape[0])]
    prompt_ids = [enc[k // g] for k in range(comp.shape[0])]
    return {"loss": float(loss), "per_token_logps": logps.tolist(), "mask": cmask.tolist(), "advantages": adv.tolist(),
            "prompt_ids": prompt_ids, "completion_ids": comp_ids}


def bench_model(path):
    """A random Qwen2 of about 0.5M parameters with the fixture's tokenizer (same weights for both sides)."""
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=300, hidden_size=128, intermediate_size=320, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, eos_token_id=2, pad_token_id=0, initializer_range=0.2)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(path)
    for f in TOK_FILES:
        shutil.copy(os.path.join(FIX, f), path)
    return sum(p.numel() for p in model.parameters())


def timed_train(trainer, steps):
    """Median seconds (process CPU and wall) per optimizer step after one warm-up step."""
    from transformers import TrainerCallback

    class T(TrainerCallback):
        def __init__(self):
            self.wall, self.cpu = [], []

        def on_step_begin(self, *a, **k):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            self.wall.append(time.perf_counter() - self.t0)
            self.cpu.append(time.process_time() - self.c0)

    cb = T()
    trainer.add_callback(cb)
    trainer.train()
    return statistics.median(cb.wall[1:]), statistics.median(cb.cpu[1:])


def speed(tmp, path, steps):
    tok = AutoTokenizer.from_pretrained(path)
    rng = torch.Generator().manual_seed(0)
    # DPO: 8 pairs of about 108 tokens (prompt ~60, completions ~48).
    rows = [{"prompt": text(rng, 28), "chosen": " " + text(rng, 22), "rejected": " " + text(rng, 22)} for _ in range(8)]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    args = DPOConfig(**common(os.path.join(tmp, "dpo"), per_device_train_batch_size=8, beta=0.1, max_length=256,
                              max_steps=steps + 1, learning_rate=1e-6))
    tr = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows * (steps + 2)), processing_class=tok)
    feats = [tr.train_dataset[i] for i in range(8)]
    dpo_tokens = int(tr.data_collator(feats)["attention_mask"].sum())
    dpo_wall, dpo_cpu = timed_train(tr, steps)
    pairs = [{"prompt": f["prompt_ids"], "chosen": f["chosen_ids"], "rejected": f["rejected_ids"]} for f in feats]
    # GRPO: 2 prompts x 4 completions of 48 tokens, generation included.
    prompts = [text(rng, 12) for _ in range(2)]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    args = GRPOConfig(**common(os.path.join(tmp, "grpo"), per_device_train_batch_size=8, num_generations=4,
                               max_completion_length=48, beta=0.0, learning_rate=1e-6, max_steps=steps + 1,
                               generation_kwargs={"min_new_tokens": 48}))
    ds = Dataset.from_list([{"prompt": p} for p in prompts] * (4 * (steps + 2)))
    tr = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [float(len(c)) / 100 for c in completions]],
                     args=args, train_dataset=ds, processing_class=tok)
    grpo_wall, grpo_cpu = timed_train(tr, steps)
    p_tokens = sum(len(tok(p)["input_ids"]) for p in prompts) * 4
    grpo_tokens = p_tokens + 8 * 48
    return {
        "dpo": {"seconds_per_step_wall": dpo_wall, "cpu_seconds_per_step": dpo_cpu, "tokens_per_step": dpo_tokens,
                "tokens_per_second": dpo_tokens / dpo_wall},
        "grpo": {"seconds_per_step_wall": grpo_wall, "cpu_seconds_per_step": grpo_cpu, "tokens_per_step": grpo_tokens,
                 "tokens_per_second": grpo_tokens / grpo_wall},
        "case": {"dpo": {"pairs": pairs, "beta": 0.1, "learning_rate": 1e-6},
                 "prompts": prompts},
    }


def run_rlox(model_dir, case, steps):
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples",
                       "posttrain_bench")
    path = os.path.join(OUT, f"case_{os.path.basename(model_dir)}.json")
    json.dump(case, open(path, "w"))
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    t0 = time.perf_counter()
    out = subprocess.run([exe, model_dir, path, str(steps)], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"rlox bench failed:\n{out.stderr}")
    res = json.loads(out.stdout)
    res["process_seconds"] = time.perf_counter() - t0
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    report = {"trl": __import__("trl").__version__, "torch": torch.__version__, "threads": 1}
    # ---- parity on the fixture
    dp = dpo_parity(os.path.join(tmp, "p1"))
    gp = grpo_parity(os.path.join(tmp, "p2"))
    case = {"dpo": {"pairs": dp["pairs"], "rows": dp["rows"], "beta": 0.1},
            "grpo": {"prompt_ids": gp["prompt_ids"], "completion_ids": gp["completion_ids"],
                     "advantages": gp["advantages"], "beta": 0.04, "epsilon": 0.2, "loss_type": "dapo",
                     "max_completion_length": 12, "temperature": 1.0, "prompt_texts": ["Compute 3+4."],
                     "num_generations": 4, "prompts_per_step": 1}}
    r = run_rlox(FIX, case, 1)
    diffs = {"dpo_loss": abs(r["dpo_parity"]["loss"] - dp["loss"])}
    for k, v in dp["metrics"].items():
        diffs[k] = abs(r["dpo_parity"]["metrics"][k] - v)
    diffs["ref_logps_max"] = max(abs(x - y) for a_, b_ in zip(r["dpo_parity"]["ref_logps"], dp["ref_logps"])
                                 for x, y in zip(a_, b_))
    diffs["grpo_loss"] = abs(r["grpo_parity"]["loss"] - gp["loss"])
    c = r["grpo_parity"]["completion_len"]
    rl = r["grpo_parity"]["per_token_logps"]
    diffs["grpo_logps_max"] = max(abs(rl[k * c + j] - gp["per_token_logps"][k][j])
                                  for k in range(len(gp["mask"])) for j in range(c) if gp["mask"][k][j])
    report["parity"] = {"trl": {"dpo_loss": dp["loss"], "dpo_metrics": dp["metrics"], "grpo_loss": gp["loss"]},
                        "rlox": {"dpo_loss": r["dpo_parity"]["loss"], "dpo_metrics": r["dpo_parity"]["metrics"],
                                 "grpo_loss": r["grpo_parity"]["loss"]},
                        "abs_diff": diffs, "rlox_tokenization_matches_trl": r.get("tokenization_matches")}
    # ---- speed
    path = os.path.join(OUT, "qwen2_bench")
    n_params = bench_model(path)
    s = speed(os.path.join(tmp, "s"), path, a.steps)
    case = {"dpo": s["case"]["dpo"],
            "grpo": {"prompt_ids": case["grpo"]["prompt_ids"], "completion_ids": case["grpo"]["completion_ids"],
                     "advantages": case["grpo"]["advantages"], "beta": 0.0, "epsilon": 0.2, "loss_type": "dapo",
                     "max_completion_length": 48, "temperature": 1.0, "prompt_texts": s["case"]["prompts"],
                     "num_generations": 4, "prompts_per_step": 2}}
    rs = run_rlox(path, case, a.steps)
    report["speed"] = {"model_parameters": n_params, "trl": {"dpo": s["dpo"], "grpo": s["grpo"]},
                       "rlox": {"dpo": rs["dpo_speed"], "grpo": rs["grpo_speed"]}}
    json.dump(report, open(os.path.join(OUT, "posttrain_trl.json"), "w"), indent=1)
    print(f"TRL {report['trl']} vs rlox, one thread\n")
    print("parity on the tiny Qwen2 fixture (absolute differences):")
    for k, v in diffs.items():
        print(f"  {k:24s} {v:.2e}")
    print(f"  rlox tokenisation == TRL's: {r.get('tokenization_matches')}")
    print(f"\nspeed on a {n_params / 1e6:.2f}M-parameter Qwen2 (median of {a.steps} steps):")
    print(f"  {'':6s} {'TRL s/step':>11s} {'rlox s/step':>12s} {'TRL tok/s':>10s} {'rlox tok/s':>11s}")
    for m in ["dpo", "grpo"]:
        t, x = s[m], rs[f"{m}_speed"]
        print(f"  {m:6s} {t['seconds_per_step_wall']:11.3f} {x['seconds_per_step']:12.3f} "
              f"{t['tokens_per_second']:10.0f} {x['tokens_per_second']:11.0f}")
    print(f"  rlox GRPO generation: {rs['grpo_speed']['generation_seconds']:.3f} s of each step")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
