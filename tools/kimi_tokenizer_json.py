#!/usr/bin/env python3
"""Convert Kimi's tiktoken tokenizer (`tiktoken.model` + `tokenizer_config.json`) into a `tokenizer.json`.

rlox reads `tiktoken.model` natively (crates/rlox-lm/src/tiktoken.rs), so this is only for other tools that
want a Hugging Face fast tokenizer. It uses transformers' `TikTokenConverter` with Kimi's pre-tokenisation
pattern, adds the 256 + 2 special tokens after the base vocabulary (names from `added_tokens_decoder`, the rest
`<|reserved_token_{id}|>`, as Kimi's `TikTokenTokenizer` does), and checks the ids against tiktoken itself on
sample text before writing.

    python tools/kimi_tokenizer_json.py MODEL_DIR [OUT_DIR]     # OUT_DIR defaults to MODEL_DIR

Needs transformers, tokenizers and tiktoken.
"""

from __future__ import annotations

import json
import os
import sys

_KIMI_PATTERN_PARTS = [
    r"""[\p{Han}]+""",
    (
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    ),
    (
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    ),
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
]
KIMI_PATTERN = "|".join(_KIMI_PATTERN_PARTS)
NUM_SPECIAL = 258
SAMPLES = [
    "hello world",
    "What colour is this image? 12345 + 678",
    "红色 和 蓝色 图片",
    "It's John's book, isn't it?\n\n  spaces\tand tabs",
    "<|im_user|>user<|im_middle|>hi<|im_end|><|media_pad|>",
]


def specials(model_dir: str, base: int) -> list[str]:
    names: dict[int, str] = {}
    path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path) as f:
            for k, v in json.load(f).get("added_tokens_decoder", {}).items():
                names[int(k)] = v["content"]
    count = max([NUM_SPECIAL] + [i + 1 - base for i in names])
    return [names.get(base + i, f"<|reserved_token_{base + i}|>") for i in range(count)]


def convert(model_dir: str):  # -> tokenizers.Tokenizer
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab_file = os.path.join(model_dir, "tiktoken.model")
    ranks = load_tiktoken_bpe(vocab_file)
    names = specials(model_dir, len(ranks))
    tok = TikTokenConverter(vocab_file=vocab_file, pattern=KIMI_PATTERN, extra_special_tokens=names).converted()
    enc = tiktoken.Encoding(
        name="kimi",
        pat_str=KIMI_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={n: len(ranks) + i for i, n in enumerate(names)},
    )
    for s in SAMPLES:
        want = enc.encode(s, allowed_special="all")
        got = tok.encode(s, add_special_tokens=False).ids
        if got != want:
            raise SystemExit(f"conversion differs from tiktoken on {s!r}: {got} vs {want}")
    return tok


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    model_dir = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else model_dir
    tok = convert(model_dir)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    print(f"wrote {os.path.join(out, 'tokenizer.json')} ({tok.get_vocab_size()} tokens); ids equal tiktoken's")


if __name__ == "__main__":
    main()
