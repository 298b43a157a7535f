"""PyTorch reference for `npm run bench`: the time of one LoRA training step on a GPT-2-shaped model.

Builds a randomly initialised GPT-2 of the given shape (HF layout, Conv1D weights [in, out]), freezes
it, adds PEFT-style LoRA (A [r, in] kaiming-uniform, B [out, r] zero, scale alpha / r, dropout on the
adapter input) to every c_attn and c_proj (attention and MLP), and times forward + backward + AdamW
on the adapter parameters after warm-up. Prints one JSON line:
  {"tokens_per_s", "step_ms", "peak_rss_mb", "torch_version", "threads", "blas", ...}

  /usr/bin/python3 bench/torch_lora_step.py --n-embd 128 --n-layer 4 --n-head 4 --vocab 4096 \\
      --seq 64 --batch 8 --rank 8 --steps 30 --threads 2
"""
import argparse
import json
import os
import re
import resource
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--n-positions", type=int, default=256)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="PyTorch intra-op (OpenMP) threads")
    p.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS threads (default: --threads)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.n_embd % args.n_head:
        p.error("--n-embd must be divisible by --n-head")
    if args.seq > args.n_positions:
        p.error("--seq must not exceed --n-positions")
    return args


ARGS = parse_args()
# OpenBLAS (what Debian's PyTorch multiplies with) reads its thread count when it loads, and
# torch.set_num_threads does not change it, so it is set before torch is imported.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads or ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
# libgomp's default spin-waiting makes every parallel region wait for a descheduled thread when another
# process holds a core: on a shared two-core machine --threads 2 measured ~10x slower than --threads 1.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "default-model"))
import gpt2  # noqa: E402  (the same GPT-2 the default model is trained with)


def blas_in_use():
    """The BLAS library actually mapped into this process (the build string only says "generic")."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path)
            if any(k in name for k in ("openblas", "libblas", "mkl", "blis", "atlas")):
                libs.add(os.path.realpath(path))
    info = torch.__config__.show()
    match = re.search(r"BLAS_INFO=(\w+)", info)
    build = match.group(1) if match else "unknown"
    kind = "openblas" if any("openblas" in lib for lib in libs) else "mkl" if any("mkl" in lib for lib in libs) \
        else "reference" if libs else "none"
    return {"blas": kind, "blas_build_info": build, "blas_libraries": sorted(libs)}


def main():
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(ARGS.seed)
    cfg = {"n_embd": ARGS.n_embd, "n_layer": ARGS.n_layer, "n_head": ARGS.n_head, "n_positions": ARGS.n_positions,
           "vocab_size": ARGS.vocab, "layer_norm_epsilon": 1e-5}
    model = gpt2.GPT2LMHeadModel(cfg)
    base_params = sum(p.numel() for p in model.parameters())
    trainable = gpt2.attach_lora(model, ARGS.rank, ARGS.alpha, ARGS.dropout)
    model.train()
    opt = torch.optim.AdamW(trainable, lr=ARGS.lr, weight_decay=0.0)
    batches = [torch.randint(0, ARGS.vocab, (ARGS.batch, ARGS.seq + 1)) for _ in range(4)]

    def step(i):
        ids = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, ARGS.vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(ARGS.warmup):
        step(i)
    times = []
    for i in range(ARGS.steps):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    print(json.dumps({
        "tokens_per_s": round(ARGS.batch * ARGS.seq / step_s, 1),
        "step_ms": round(step_s * 1000, 2),
        "step_ms_mean": round(statistics.fmean(times) * 1000, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_threads": ARGS.blas_threads or ARGS.threads,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        **blas_in_use(),
        "base_params": base_params,
        "trainable_params": sum(p.numel() for p in trainable),
        "config": {"n_embd": ARGS.n_embd, "n_layer": ARGS.n_layer, "n_head": ARGS.n_head, "vocab": ARGS.vocab,
                   "seq": ARGS.seq, "batch": ARGS.batch, "rank": ARGS.rank, "alpha": ARGS.alpha, "steps": ARGS.steps},
    }))


if __name__ == "__main__":
    main()
