"""The HF metadata files and the model card of the default model."""
import json
import os

import bpe

# (prompt, label, temperature, max new tokens): greedy for the QA format, seeded top-k sampling for prose,
# where greedy decoding of a model this small falls into loops.
GENERATION_PROMPTS = [
    ("And God said", "sampled (T=0.8, top-k 40)", 0.8, 40),
    ("Question: What is the opposite of hot?\nAnswer:", "greedy", 0.0, 8),
    ("The man", "sampled (T=0.8, top-k 40)", 0.8, 40),
]

# Strings that exercise every branch of the GPT-2 split pattern and non-ASCII bytes.
PARITY_EXTRAS = [
    "", " ", "  ", "\n", "\n\n", "a  b", "a\tb", "trailing  ", "  leading", "x \n y", "don't", "I'LL", "we'll've",
    "they're 've", "12345 678", "3.14159", "a1b2c3", "!!!???", "(hello), [world]", "e-mail: me@example.com",
    "café naïve résumé", "Über straße", "中文字符", "emoji 🙂👍", "e\u0301", "\u00a0nbsp", "tab\t\tx",
    "Question: What is the opposite of hot?\nAnswer: cold<|endoftext|>Review: ok", "<|endoftext|>",
    "And God said, Let there be light: and there was light.",
]


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_hf_files(out, cfg, vocab, merges):
    eos = vocab[bpe.EOS]
    write_json(os.path.join(out, "config.json"), {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.0,
        "bos_token_id": eos,
        "embd_pdrop": 0.0,
        "eos_token_id": eos,
        "initializer_range": 0.02,
        "layer_norm_epsilon": cfg["layer_norm_epsilon"],
        "model_type": "gpt2",
        "n_ctx": cfg["n_positions"],
        "n_embd": cfg["n_embd"],
        "n_head": cfg["n_head"],
        "n_inner": None,
        "n_layer": cfg["n_layer"],
        "n_positions": cfg["n_positions"],
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.0,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": cfg["vocab_size"],
    })
    write_json(os.path.join(out, "generation_config.json"),
               {"_from_model_config": True, "bos_token_id": eos, "eos_token_id": eos})
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(bpe.tokenizer_json(vocab, merges), f, ensure_ascii=False, separators=(",", ":"))
    write_json(os.path.join(out, "tokenizer_config.json"), bpe.tokenizer_config_json(eos, cfg["n_positions"]))


def _indent(text):
    return "\n".join("    " + line if line else "" for line in text.rstrip().splitlines())


def write_model_card(out, *, cfg, n_params, weights_sha, weights_bytes, stats, run, metrics, generations, lora, args,
                     torch_version, licenses):
    kjv_ppl, kjv_tokens = metrics["kjv"]
    wn_ppl, wn_tokens = metrics["wordnet"]
    s = metrics["sample"]
    gens = "\n\n".join(f"**{mode}**, prompt `{json.dumps(p)}`:\n\n```text\n{p}{text}\n```" for p, mode, text in generations)
    recipe_args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items()
                           if k not in ("out", "sample", "skip_parity"))
    capped = (f" (the --max-minutes cap was reached before step {args['steps']}, so the schedule was compressed "
              "to end there; a rerun on a faster or idler machine gives different weights)") if run["time_capped"] else \
        " (uncapped: a rerun with the same PyTorch build on the same kind of CPU reproduces the weights)"
    parity = (f"Checked to encode {stats['parity_strings']} strings exactly as @huggingface/tokenizers does."
              if stats["parity_strings"] else "Not checked against @huggingface/tokenizers in this build (--skip-parity).")
    names = {"kjv": "Bible", "wordnet": "WordNet", "sample": "sample rows"}
    tokens = ", ".join(f"{names[k]} {v:,} tokens" for k, v in sorted(stats["train_tokens"].items()))
    copies = "each once" if args["sample_copies"] == 1 else f"each {args['sample_copies']} times"
    points = run["history"][::4]
    if points[-1] is not run["history"][-1]:
        points.append(run["history"][-1])
    curve = ", ".join(f"{h['step']}: {h['loss']:.2f}" for h in points)
    text = f"""---
license: mit
language: en
library_name: transformers
pipeline_tag: text-generation
tags: [gpt2, tiny, from-scratch]
---

# lora-workbench default model

A {n_params / 1e6:.2f}M-parameter GPT-2 that lora-workbench makes itself and embeds, so that a first
LoRA run works offline. It writes recognisable (mostly King James and dictionary-style) English and
knows the question/answer format of the embedded sample dataset; it knows little else.

## Facts

| key | value |
| --- | --- |
| architecture | GPT2LMHeadModel (HF GPT-2: pre-LN, gelu_new, learned positions, lm_head tied to wte) |
| parameters | {n_params} |
| n_embd | {cfg['n_embd']} |
| n_layer | {cfg['n_layer']} |
| n_head | {cfg['n_head']} |
| n_positions | {cfg['n_positions']} |
| vocab_size | {cfg['vocab_size']} |
| dtype | float32 |
| model.safetensors bytes | {weights_bytes} |
| model.safetensors SHA-256 | `{weights_sha}` |
| corpus SHA-256 | `{stats['corpus_sha256']}` |
| seed | {args['seed']} |

## Validation perplexity

Held-out text never seen in training (tokenizer or model), non-overlapping 128-token windows:

| held-out set | tokens | perplexity |
| --- | --- | --- |
| King James Bible, 1/32 of the chapters | {kjv_tokens} | {kjv_ppl:.2f} |
| WordNet sentences, 1/32 of the groups | {wn_tokens} | {wn_ppl:.2f} |

Held-out sample rows ({s['rows']} rows of resources/datasets/sample, SHA-256 of the prompt starting with 0 or 1):
perplexity {s['row_ppl']:.2f} over whole rows, {s['completion_ppl']:.2f} over the completion tokens plus
end-of-text; greedy decoding gets {100 * s['exact_match']:.1f}% of the completions exactly right.

So LoRA on the sample data still has something to learn: a {lora['steps']}-step LoRA run with the app's defaults
(r 8, alpha 16, c_attn + c_proj, lr 2e-3, batch 8, loss on completion + end-of-text, a random 10% held out;
scripts/default-model/lora_check.py) lowers the mean training loss from {lora['train_first']:.2f} (first 20
steps) to {lora['train_last']:.2f} (last 20) and the validation loss from {lora['val_first']:.2f} to {lora['val_last']:.2f}.

## Sample generations

{gens}

## Training corpus

Extracted at build time from Debian packages; the corpus itself is not committed.

- **King James Bible** (Debian `bible-kjv-text`, read with `bible -f Gen1:1-Rev22:21` from `bible-kjv`): all
  {stats['kjv_chapters']} chapters, verses joined into running prose, {stats['words']['kjv']:,} training words.
  Public domain.
- **WordNet 3.0** (Debian `wordnet-base`, /usr/share/wordnet/data.noun, data.verb, data.adj): every example
  sentence of four words or more, and the first definition of senses attested in SemCor rendered as a sentence ("A desk is a
  piece of furniture ...", "To modernize is to ..."), {stats['words']['wordnet']:,} training words from
  {stats['wordnet_synsets']:,} synsets. WordNet 3.0 license (below).
- **Sample dataset rows** ({stats['sample_rows']['train']} of them, {copies} in the stream), so LoRA starts from a
  model that has seen the format; the {stats['sample_rows']['held_out']} held-out rows are excluded.

SHA-256 of the corpus text (Bible chapters then WordNet documents, joined by blank lines, held-out parts
included): `{stats['corpus_sha256']}`. Training stream: {tokens}.

## Recipe

`npm run make:default-model` runs scripts/make-default-model.py (helpers in scripts/default-model/), with
PyTorch {torch_version} on one CPU thread:

1. Byte-level BPE, GPT-2 style (ByteLevel pre-tokenizer with GPT-2's split pattern, add_prefix_space false,
   256 byte tokens, {cfg['vocab_size'] - 257} merges, `<|endoftext|>` as id {cfg['vocab_size'] - 1}), trained on the
   training text by the script's own trainer ({stats['tokenizer_seconds']} s). {parity}
2. GPT-2 init (N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)), documents packed with
   `<|endoftext|>` between them, random windows (128 tokens, every fourth step 256), 4,096 tokens a step.
3. AdamW (betas 0.9/0.95, weight decay on matrices), linear warm-up then cosine decay to 10%, gradient
   clipping at 1, no dropout. Arguments: `{recipe_args}`.
4. {run['steps']} steps, {run['tokens']:,} tokens, {run['seconds'] / 60:.1f} minutes of wall time{capped}.
   Smoothed training loss by step: {curve}.

## Licenses

The weights and tokenizer are released under the MIT license, like lora-workbench. The corpus licenses
as their Debian copyright files state them:

`/usr/share/doc/bible-kjv-text/copyright`:

{_indent(licenses['bible-kjv-text'])}

`/usr/share/doc/wordnet-base/copyright`:

{_indent(licenses['wordnet-base'])}
"""
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)
