"""Builds resources/models/default: a small GPT-2 pretrained from scratch on public-domain English.

Run with `npm run make:default-model` (needs Debian's python3-torch, bible-kjv, bible-kjv-text,
wordnet-base, and resources/datasets/sample from `npm run make:sample-data`). One CPU thread,
fixed seed: the same machine and PyTorch build give the same weights. Progress goes to stdout.
"""
import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

# Debian's PyTorch calls OpenBLAS (pthread build), which sizes its own thread pool from the machine unless
# told before it loads; torch.set_num_threads does not reach it. One thread keeps the build reproducible
# across machines and leaves the other core to the rest of the tooling.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "default-model"))

import torch  # noqa: E402

import bpe  # noqa: E402
import card  # noqa: E402
import corpus  # noqa: E402
import gpt2  # noqa: E402
import lora_check  # noqa: E402

CONFIG = {"n_embd": 128, "n_layer": 4, "n_head": 4, "n_positions": 256, "vocab_size": 4096, "layer_norm_epsilon": 1e-5}


START = time.time()


def log(msg):
    print(f"[{time.time() - START:7.1f}s] {msg}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "resources", "models", "default"))
    p.add_argument("--sample", default=os.path.join(ROOT, "resources", "datasets", "sample", "train.jsonl"))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--batch-tokens", type=int, default=4096, help="tokens per optimizer step")
    p.add_argument("--sample-copies", type=int, default=1, help="times each training sample row appears in the stream")
    p.add_argument("--max-minutes", type=float, default=25.0, help="wall-time cap on training (compresses the schedule)")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch threads; OpenBLAS takes its own from OPENBLAS_NUM_THREADS (1 unless set)")
    p.add_argument("--skip-parity", action="store_true", help="skip the JS tokenizer parity check (needs node)")
    return p.parse_args()


def build_stream(train, tok, rng, sample_copies):
    """One token stream: documents in seeded random order, each followed by EOS (GPT-2's packing)."""
    docs = [("kjv", d) for d in train["kjv"]] + [("wordnet", d) for d in train["wordnet"]]
    docs += [("sample", d) for d in train["sample"] for _ in range(sample_copies)]
    rng.shuffle(docs)
    ids, per_source = [], {}
    for source, text in docs:
        enc = tok.encode(text) + [tok.eos_id]
        ids.extend(enc)
        per_source[source] = per_source.get(source, 0) + len(enc)
    return torch.tensor(ids, dtype=torch.long), per_source


def batch_shape(step, batch_tokens, n_positions):
    # Most steps use 128-token windows (cheaper attention); every fourth uses the full context so
    # that all n_positions position embeddings are trained.
    t = n_positions if step % 4 == 3 else n_positions // 2
    return batch_tokens // t, t


def lr_at(step, progress, args):
    """Linear warm-up, then cosine decay to 10% of the peak over `progress` in [0, 1]."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(model, stream, args, gen):
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    t_start, seen, history, smooth = time.time(), 0, [], None
    budget = args.max_minutes * 60
    step, time_capped = 0, False
    while True:
        # Progress is the larger of step and time fractions: on a busy machine the schedule compresses
        # so training still ends annealed within --max-minutes (the card then says the cap was hit;
        # only an uncapped run is reproducible bit for bit).
        elapsed = time.time() - t_start
        progress = max(step / args.steps, elapsed / budget)
        if progress >= 1:
            time_capped = step < args.steps
            break
        b, t = batch_shape(step, args.batch_tokens, CONFIG["n_positions"])
        starts = torch.randint(0, stream.numel() - t - 1, (b,), generator=gen)
        x = torch.stack([stream[s:s + t] for s in starts.tolist()])
        y = torch.stack([stream[s + 1:s + t + 1] for s in starts.tolist()])
        lr = lr_at(step, progress, args)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = gpt2.tied_cross_entropy(model, x, y)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += b * t
        smooth = loss if smooth is None else 0.95 * smooth + 0.05 * loss
        if step % 50 == 0:
            elapsed = time.time() - t_start
            history.append({"step": step, "loss": round(smooth, 4)})
            log(f"step {step:5d}/{args.steps}  loss {loss:.3f} (smoothed {smooth:.3f})  lr {lr:.2e}  "
                f"{seen / elapsed:,.0f} tok/s  progress {100 * progress:.0f}%")
        step += 1
    if time_capped:
        log(f"stopped at step {step} of {args.steps}: --max-minutes {args.max_minutes} reached")
    history.append({"step": step - 1, "loss": round(smooth, 4)})
    return {"steps": step, "tokens": seen, "seconds": time.time() - t_start, "history": history,
            "time_capped": time_capped}


@torch.no_grad()
def corpus_perplexity(model, docs, tok, window=128):
    """exp(mean next-token loss) over non-overlapping windows of the held-out documents."""
    total, count = 0.0, 0
    for doc in docs:
        ids = tok.encode(doc) + [tok.eos_id]
        for s in range(0, len(ids) - 1, window):
            chunk = torch.tensor(ids[s:s + window + 1]).unsqueeze(0)
            if chunk.shape[1] < 2:
                continue
            logits = model(chunk[:, :-1])
            total += torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item()
            count += chunk.shape[1] - 1
    return math.exp(total / count), count


@torch.no_grad()
def sample_metrics(model, rows, tok):
    """Perplexity over whole rows, over the completion tokens (+ EOS) alone, and greedy exact-match accuracy."""
    row_total = row_count = comp_total = comp_count = correct = 0
    for r in rows:
        p, c = tok.encode(r["prompt"]), tok.encode(r["completion"]) + [tok.eos_id]
        ids = torch.tensor(p + c).unsqueeze(0)
        losses = torch.nn.functional.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:], reduction="none")
        row_total += losses.sum().item()
        row_count += losses.numel()
        comp_total += losses[len(p) - 1:].sum().item()
        comp_count += len(c)
        out = generate(model, tok, r["prompt"], max_new=len(c) + 2)
        correct += out.split("\n")[0].strip() == r["completion"].strip()
    return {"row_ppl": math.exp(row_total / row_count), "completion_ppl": math.exp(comp_total / comp_count),
            "exact_match": correct / len(rows), "rows": len(rows)}


@torch.no_grad()
def generate(model, tok, prompt, max_new=40, temperature=0.0, top_k=40, gen=None):
    ids = tok.encode(prompt)
    for _ in range(max_new):
        logits = model(torch.tensor(ids[-CONFIG["n_positions"]:]).unsqueeze(0))[0, -1]
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            v, i = torch.topk(logits / temperature, top_k)
            nxt = int(i[torch.multinomial(torch.softmax(v, -1), 1, generator=gen)])
        if nxt == tok.eos_id:
            break
        ids.append(nxt)
    return tok.decode(ids[len(tok.encode(prompt)):])


def parity_check(out_dir, tok, val):
    """Encodes a few hundred strings here and in @huggingface/tokenizers (what the app uses); they must agree."""
    strings = card.PARITY_EXTRAS + [r["prompt"] + r["completion"] for r in val["sample"]]
    strings += [d[:400] for d in val["kjv"][:60]] + [d[:400] for d in val["wordnet"][:60]]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "parity.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tokenizerDir": out_dir, "cases": [{"text": s, "ids": tok.encode(s)} for s in strings]}, f)
        script = os.path.join(HERE, "default-model", "tokenizer-parity.ts")
        subprocess.run(["node", "--import", "tsx", script, path], check=True, cwd=ROOT)
    return len(strings)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    if not os.path.exists(args.sample):
        sys.exit(f"{args.sample} is missing: run `npm run make:sample-data` first.")

    log("extracting the corpus (bible-kjv, wordnet-base) and the sample rows")
    train_docs, val_docs, stats = corpus.build_corpus(args.sample)
    log(f"corpus: {stats}")

    log(f"training a byte-level BPE with {CONFIG['vocab_size']} tokens")
    t0 = time.time()
    vocab, merges = bpe.train_bpe(train_docs["kjv"] + train_docs["wordnet"] + train_docs["sample"],
                                  CONFIG["vocab_size"], progress=log)
    tok = bpe.Tokenizer(vocab, merges)
    stats["tokenizer_seconds"] = round(time.time() - t0, 1)
    if len(vocab) != CONFIG["vocab_size"]:
        sys.exit(f"BPE stopped at {len(vocab)} tokens; the corpus is too small for {CONFIG['vocab_size']}")

    stream, per_source = build_stream(train_docs, tok, rng, args.sample_copies)
    stats["train_tokens"] = per_source
    log(f"training stream: {stream.numel():,} tokens {per_source}")

    cfg = dict(CONFIG)
    model = gpt2.GPT2LMHeadModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters")
    run = train(model, stream, args, gen)
    log(f"trained {run['steps']} steps, {run['tokens']:,} tokens in {run['seconds'] / 60:.1f} min")

    model.eval()
    metrics = {"kjv": corpus_perplexity(model, val_docs["kjv"], tok),
               "wordnet": corpus_perplexity(model, val_docs["wordnet"], tok),
               "sample": sample_metrics(model, val_docs["sample"], tok)}
    log(f"validation: {metrics}")
    gen_sampling = torch.Generator().manual_seed(args.seed)
    generations = [(p, mode, generate(model, tok, p, max_new=n, temperature=t, gen=gen_sampling))
                   for p, mode, t, n in card.GENERATION_PROMPTS]
    for p, mode, text in generations:
        log(f"{mode}: {p!r} -> {text!r}")

    os.makedirs(args.out, exist_ok=True)
    weights_path = os.path.join(args.out, "model.safetensors")
    gpt2.write_safetensors(weights_path, gpt2.state_dict_for_export(model), {"format": "pt"})
    reloaded = gpt2.read_safetensors(weights_path)
    check = gpt2.GPT2LMHeadModel(cfg)
    check.load_state_dict(reloaded)
    probe = torch.tensor([tok.encode("And God said")])
    if not torch.equal(check(probe), model(probe)):
        sys.exit("model.safetensors does not reproduce the trained model")
    card.write_hf_files(args.out, cfg, vocab, merges)
    stats["parity_strings"] = 0 if args.skip_parity else parity_check(args.out, tok, val_docs)
    log("LoRA check: 100 steps with the app's default settings on the sample data")
    lora = lora_check.summarize(lora_check.run_check(args.out, args.sample, steps=100))
    log(f"LoRA check: {lora}")
    with open(weights_path, "rb") as f:
        weights_sha = hashlib.sha256(f.read()).hexdigest()
    card.write_model_card(args.out, cfg=cfg, n_params=n_params, weights_sha=weights_sha,
                          weights_bytes=os.path.getsize(weights_path), stats=stats, run=run, metrics=metrics,
                          generations=generations, lora=lora, args=vars(args), torch_version=torch.__version__,
                          licenses={k: open(v, encoding="utf-8").read() for k, v in corpus.LICENSE_FILES.items()})
    log(f"wrote {args.out} (model.safetensors sha256 {weights_sha})")


if __name__ == "__main__":
    main()
