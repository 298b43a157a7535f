"""Does a short LoRA run on the embedded sample data show a falling loss on the default model?

Mirrors the app's default run settings (r 8, alpha 16, dropout 0.05, c_attn + c_proj, AdamW lr 2e-3
with 10 warm-up steps, batch 8, 96-token rows, 10% validation) in PyTorch, with the loss on the
completion tokens plus end-of-text. Prints the loss curve as JSON lines.

  /usr/bin/python3 scripts/default-model/lora_check.py [--steps 100] [--model resources/models/default]
"""
import argparse
import json
import os
import random
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bpe  # noqa: E402
import gpt2  # noqa: E402


def encode_rows(rows, tok, max_len):
    out = []
    for r in rows:
        p, c = tok.encode(r["prompt"]), tok.encode(r["completion"]) + [tok.eos_id]
        p = p[-(max_len - len(c)):]  # truncate the prompt side first
        out.append((p + c, len(p)))
    return out


def batch_tensors(examples):
    t = max(len(ids) for ids, _ in examples) - 1
    x = torch.full((len(examples), t), 0, dtype=torch.long)
    y = torch.zeros_like(x)
    mask = torch.zeros_like(x, dtype=torch.float32)
    for i, (ids, n_prompt) in enumerate(examples):
        n = len(ids) - 1
        x[i, :n] = torch.tensor(ids[:-1])
        y[i, :n] = torch.tensor(ids[1:])
        mask[i, n_prompt - 1:n] = 1.0
    return x, y, mask


def masked_loss(model, x, y, mask):
    logits = model(x)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return (losses * mask.reshape(-1)).sum() / mask.sum()


def run_check(model_dir, data_path, steps=100, lr=2e-3, seed=42, log=None):
    """Returns [{step, train_loss?, val_loss?}]; val_loss at step 0, every 20 steps and at the end."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    cfg = {k: hf[k] for k in ("n_embd", "n_layer", "n_head", "n_positions", "vocab_size", "layer_norm_epsilon")}
    model = gpt2.GPT2LMHeadModel(cfg)
    model.load_state_dict(gpt2.read_safetensors(os.path.join(model_dir, "model.safetensors")))
    tok = bpe.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(data_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rng.shuffle(rows)
    n_val = len(rows) // 10
    val, train = encode_rows(rows[:n_val], tok, 96), encode_rows(rows[n_val:], tok, 96)

    params = gpt2.attach_lora(model, r=8, alpha=16, dropout=0.05)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    @torch.no_grad()
    def val_loss():
        model.eval()
        total = sum(masked_loss(model, *batch_tensors(val[i:i + 32])).item() * len(val[i:i + 32])
                    for i in range(0, len(val), 32))
        model.train()
        return total / len(val)

    records = [{"step": 0, "val_loss": round(val_loss(), 4)}]
    order = []
    for step in range(1, steps + 1):
        if len(order) < 8:
            order += rng.sample(range(len(train)), len(train))
        batch, order = [train[i] for i in order[:8]], order[8:]
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, step / 10)
        loss = masked_loss(model, *batch_tensors(batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        record = {"step": step, "train_loss": round(loss.item(), 4)}
        if step % 20 == 0 or step == steps:
            record["val_loss"] = round(val_loss(), 4)
        records.append(record)
        if log:
            log(json.dumps(record))
    return records


def summarize(records, window=20):
    """Mean train loss over the first and last `window` steps, and the first and last validation loss."""
    train = [r["train_loss"] for r in records if "train_loss" in r]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    return {"steps": len(train), "train_first": sum(train[:window]) / len(train[:window]),
            "train_last": sum(train[-window:]) / len(train[-window:]), "val_first": val[0], "val_last": val[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "resources", "models", "default"))
    ap.add_argument("--data", default=os.path.join(ROOT, "resources", "datasets", "sample", "train.jsonl"))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    torch.set_num_threads(1)
    records = run_check(args.model, args.data, args.steps, args.lr, args.seed, log=print)
    print(json.dumps(summarize(records)))


if __name__ == "__main__":
    main()
