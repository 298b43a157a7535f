"""Writes test/fixtures/t5-tiny: a T5 (encoder-decoder, the SeLoRA paper's base model family) Hugging Face
folder with random weights, made with transformers' own T5Config / T5ForConditionalGeneration, for the
pytorch engine's sequence-to-sequence tests. The tokenizer is the tiny GPT-2 fixture's byte-level BPE
(test/fixtures/tokenizer): the model's architecture does not depend on the tokenizer's kind, and the
workbench's TypeScript tokenizer reads it as it is. <|endoftext|> (id 263) is EOS, pad and decoder start.

Run: .venv/bin/python engine-torch/scripts/make_t5_fixture.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "t5-tiny"
TOKENIZER = ROOT / "test" / "fixtures" / "gpt2-tiny"
EOS = 263


def main() -> None:
    torch.manual_seed(12)
    config = transformers.T5Config(
        vocab_size=264, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.0,
        feed_forward_proj="relu", tie_word_embeddings=True,
        pad_token_id=EOS, eos_token_id=EOS, decoder_start_token_id=EOS, n_positions=64,
    )
    model = transformers.T5ForConditionalGeneration(config).eval()
    if OUT.exists():
        shutil.rmtree(OUT)
    model.save_pretrained(OUT, safe_serialization=True)
    shutil.copy(TOKENIZER / "tokenizer.json", OUT / "tokenizer.json")
    tokenizer_config = json.loads((TOKENIZER / "tokenizer_config.json").read_text())
    tokenizer_config.update({"pad_token": "<|endoftext|>", "model_max_length": 64})
    (OUT / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1) + "\n")
    (OUT / "generation_config.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
