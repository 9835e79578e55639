#!/usr/bin/env python3
"""Build the tiny rlox-lm test fixtures with Hugging Face transformers and write reference outputs.

Setup (CPU only):
    python3 -m venv tools/.venv-lm
    tools/.venv-lm/bin/pip install --no-cache-dir torch transformers tokenizers safetensors
    tools/.venv-lm/bin/python tools/lm_fixtures.py

Writes crates/rlox-lm/tests/fixtures/{tokenizer.json, qwen2_tied/, llama_untied/, qwen2_moe/}: each model
directory holds config.json, model.safetensors, tokenizer files and reference.json (prompt ids, greedy
32-token continuations, and the logits of each prompt, flattened, in f32).

Subcommand `halves`: derive crates/rlox-lm/tests/fixtures/{qwen2_bf16, qwen2_f16}/ from qwen2_tied/ (run it
after the main command): transformers converts the f32 weights with `.to(torch.bfloat16)` / `.to(torch.float16)`
and saves them; reference.json holds the prompts, transformers' logits of the converted weights computed in f32
(`from_pretrained(..., dtype=torch.float32)`), the same logits computed in the half dtype itself
(`logits_half`, bf16 only, for rlox's bf16 compute), and the 32-token greedy continuations.

Subcommand `verify DIR REF.json`: load a directory written by rlox in transformers and compare its logits
with those rlox wrote (REF.json: {"prompts": [[ids]], "logits": [[flat]]}).
"""
import json
import os
import shutil
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, processors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "rlox-lm", "tests", "fixtures")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Reinforcement learning trains an agent to maximise its return.",
    "A policy maps states to actions; a value function predicts returns.",
    "Language models predict the next token given the previous ones.",
    "Rust is fast, safe and fun. Python is flexible.",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "Hello world! How are you today? I am fine, thank you.",
] * 20

PROMPTS = [
    "The quick brown fox",
    "Hello world! How are you",
    "A policy maps states to actions; a value function predicts",
]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tokenizer(path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(path)
    return tok


def side_files(d, tok):
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(
            {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML,
             "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 128}, f, indent=1)


def greedy(model, ids, n):
    ids = list(ids)
    out = []
    margins = []
    for _ in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
        t = int(torch.argmax(logits))
        ids.append(t)
        out.append(t)
    return out, min(margins)


def make(name, model, tok, tokdir):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    shutil.copy(os.path.join(tokdir, "tokenizer.json"), d)
    side_files(d, tok)
    ref = {"prompts": [], "logits": [], "greedy": [], "min_margin": []}
    for p in PROMPTS:
        ids = tok.encode(p).ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        g, m = greedy(model, ids, 32)
        ref["prompts"].append(ids)
        ref["logits"].append([round(float(x), 7) for x in logits.flatten()])
        ref["greedy"].append(g)
        ref["min_margin"].append(m)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    size = os.path.getsize(os.path.join(d, "model.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params, {size} bytes, min greedy margin "
          f"{min(ref['min_margin']):.4f}")


def main():
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    tokpath = os.path.join(ROOT, "tokenizer.json")
    tok = build_tokenizer(tokpath)
    vocab = tok.get_vocab_size()
    eos = tok.token_to_id("<|im_end|>")
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.2, eos_token_id=eos,
                  bos_token_id=None, pad_token_id=tok.token_to_id("<|endoftext|>"))
    # Qwen2, tied embeddings, sliding window (width 6) on the second layer.
    c = Qwen2Config(**common, tie_word_embeddings=True, use_sliding_window=True, sliding_window=6, max_window_layers=1,
                    rope_theta=10000.0)
    make("qwen2_tied", Qwen2ForCausalLM(c), tok, ROOT)
    # Llama, untied, Llama 3 rope scaling.
    c = LlamaConfig(**common, tie_word_embeddings=False, rope_theta=500000.0,
                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 32})
    make("llama_untied", LlamaForCausalLM(c), tok, ROOT)
    # Qwen2-MoE: 4 experts, top-2, a gated shared expert.
    c = Qwen2MoeConfig(**common, tie_word_embeddings=False, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                       shared_expert_intermediate_size=64, norm_topk_prob=False, decoder_sparse_step=1)
    make("qwen2_moe", Qwen2MoeForCausalLM(c), tok, ROOT)


def halves():
    from transformers import AutoModelForCausalLM

    src = os.path.join(ROOT, "qwen2_tied")
    tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    for name, dtype in [("qwen2_bf16", torch.bfloat16), ("qwen2_f16", torch.float16)]:
        d = os.path.join(ROOT, name)
        os.makedirs(d, exist_ok=True)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval().to(dtype)
        model.save_pretrained(d, safe_serialization=True)
        for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
            shutil.copy(os.path.join(src, f), d)
        upcast = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        ref = {"prompts": [], "logits": [], "logits_half": [], "greedy": [], "min_margin": []}
        for p in PROMPTS:
            ids = tok.encode(p).ids
            with torch.no_grad():
                logits = upcast(torch.tensor([ids])).logits[0]
                half = model(torch.tensor([ids])).logits[0].float()
            g, m = greedy(upcast, ids, 32)
            ref["prompts"].append(ids)
            ref["logits"].append([round(float(x), 7) for x in logits.flatten()])
            if dtype == torch.bfloat16:
                ref["logits_half"].append([round(float(x), 4) for x in half.flatten()])
            ref["greedy"].append(g)
            ref["min_margin"].append(m)
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f)
        size = os.path.getsize(os.path.join(d, "model.safetensors"))
        print(f"{name}: {size} bytes, min greedy margin {min(ref['min_margin']):.4f}")


def verify(d, ref_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    model.eval()
    ref = json.load(open(ref_path))
    worst = 0.0
    for ids, flat in zip(ref["prompts"], ref["logits"]):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].flatten()
        worst = max(worst, float((logits - torch.tensor(flat)).abs().max()))
    print(json.dumps({"dir": d, "class": type(model).__name__, "prompts": len(ref["prompts"]),
                      "max_abs_logit_diff": worst, "ok": worst < 1e-4}))
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "halves":
        halves()
    else:
        main()
