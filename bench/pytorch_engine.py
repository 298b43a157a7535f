"""The pytorch engine against a plain transformers + PEFT training loop, in the same run on the same machine.

Each measurement runs in its own process (peak memory is that process's own), the two implementations
alternate, and each reports the median step of its timed steps after warm-up steps. Both train the same
model folder (random weights, written once by transformers), the same LoRA, the same batches
(B x T tokens, the first quarter of each row a prompt outside the loss), AdamW with clipping.

  --preset cpu   GPT-2 124M shape (n_embd 768, 12 layers, vocab 50257), float32, batch 2 x 256,
                 LoRA r 8 on c_attn and c_proj: the acceptance row of issue 12 (overhead <= 5%).
  --preset cuda  on an NVIDIA GPU: GPT-2 124M and a Qwen2-0.5B shape (hidden 896, 24 layers, 14 heads /
                 2 kv, intermediate 4864, vocab 151936), bfloat16, LoRA r 16 on every linear layer,
                 batch 8 x 512; also GPU memory and MFU. Made to run as it is, in under 10 minutes:
                     python3 bench/pytorch_engine.py --preset cuda --write

--write appends the section to bench/RESULTS.md. Run with the repository's .venv (or any Python with
engine-torch/requirements.txt installed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "engine-torch"))

SHAPES: dict[str, dict[str, Any]] = {
    "gpt2-124m": {
        "config": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024},
        "targets": {"cpu": ["c_attn", "c_proj"], "cuda": ["c_attn", "c_proj", "c_fc"]},
    },
    "qwen2-0.5b": {
        "config": {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "max_position_embeddings": 4096, "tie_word_embeddings": True},
        "targets": {"cuda": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
    },
}
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"models": ["gpt2-124m"], "batch": 2, "seq": 256, "r": 8, "dtype": "float32", "warmup": 2, "steps": 6, "rounds": 2},
    "cuda": {"models": ["gpt2-124m", "qwen2-0.5b"], "batch": 8, "seq": 512, "r": 16, "dtype": "bfloat16", "warmup": 3, "steps": 20, "rounds": 2},
}
#: Dense bf16 peak of the GPUs this is likely to meet (TFLOP/s), for MFU; others: --peak-tflops.
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}


def make_model(name: str, folder: Path, dtype: str) -> None:
    import torch
    import transformers

    spec = dict(SHAPES[name]["config"])
    model_type = spec.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **spec)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(folder, safe_serialization=True)


def make_plan(batch: int, seq: int, steps: int, vocab: int) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(1)
    rows = batch * steps
    prompt = seq // 4
    examples = []
    for _ in range(rows):
        ids = torch.randint(0, vocab, (seq,), generator=generator).tolist()
        examples.append({"inputIds": ids, "lossMask": [0] * prompt + [1] * (seq - prompt), "promptLength": prompt, "bosLength": 0, "prompt": ids[:prompt]})
    return {
        "format": "lora-workbench-data-plan", "version": 1, "padTokenId": 0, "maxSeqLen": seq, "examples": examples,
        "train": list(range(rows)), "validation": [],
        "steps": [{"rows": list(range(s * batch, (s + 1) * batch)), "batcher": {"epoch": 0, "position": (s + 1) * batch}, "task": None} for s in range(steps)],
        "dataset": {"rows": rows, "trainRows": rows, "validationRows": 0, "fingerprint": "bench"}, "probeInputIds": [examples[0]["prompt"][:16]],
        "taskProbabilities": [], "baseModelFingerprint": None,
    }


def lora_flops_per_token(model: Any, r_params: int) -> float:
    """Forward 2N, backward 2N (input gradients through the frozen base) + 4 x LoRA parameters; attention scores ignored."""
    n = sum(p.numel() for p in model.parameters())
    return 4.0 * n + 6.0 * r_params


def measure_plain(args: argparse.Namespace) -> dict[str, Any]:
    """The reference: transformers' forward with labels, PEFT's LoRA, torch's AdamW, nothing else."""
    import peft
    import torch
    import transformers

    device = torch.device(args.device)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True, dtype=getattr(torch, args.dtype)).to(device).eval()
    model = peft.get_peft_model(model, peft.LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.05, target_modules=args.targets, fan_in_fan_out="gpt2" in args.model_name))
    for name, module in model.named_modules():
        if name.endswith("lora_dropout.default"):
            module.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    plan = json.loads(Path(args.plan).read_text())
    times = []
    for step in range(args.warmup + args.steps):
        began = time.perf_counter()
        rows = [plan["examples"][i] for i in plan["steps"][step]["rows"]]
        ids = torch.tensor([e["inputIds"] for e in rows], device=device)
        labels = torch.where(torch.tensor([e["lossMask"] for e in rows], device=device) == 1, ids, torch.full_like(ids, -100))
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - began)
    trainable = sum(p.numel() for p in params)
    return {"step_s": statistics.median(times), "trainable": trainable, "flops_per_token": lora_flops_per_token(model, trainable)}


def measure_engine(args: argparse.Namespace) -> dict[str, Any]:
    """The workbench's pytorch engine as a run executes it (workbench_torch.train.Trainer), its messages discarded."""
    import io

    import torch

    from workbench_torch.distributed import World
    from workbench_torch.protocol import Emitter, NeverStop
    from workbench_torch.train import Trainer

    defaults = json.loads((ROOT / "engine-torch" / "tests" / "default-run-configs.json").read_text())["lora"]
    total = args.warmup + args.steps
    config = {**defaults, "engine": "pytorch", "model": args.model, "dataset": "bench", "method": "lora",
              "lora": {**defaults["lora"], "r": args.r, "alpha": 2 * args.r, "dropout": 0.05, "targetModules": args.targets},
              "training": {**defaults["training"], "learningRate": 1e-4, "warmupSteps": 0, "batchSize": args.batch, "maxSteps": total, "maxSeqLen": args.seq, "checkpointEvery": 1_000_000, "evalEvery": 1_000_000}}
    with tempfile.TemporaryDirectory() as run_dir:
        job = {"type": "train", "runId": "bench", "config": config, "modelDir": args.model, "datasetPath": "bench", "runDir": run_dir, "resumeFrom": None}
        out = io.StringIO()
        Trainer(job, json.loads(Path(args.plan).read_text()), Emitter(out), NeverStop(), World(0, 1, 0), torch.device(args.device)).run()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    failed = [m for m in messages if m["type"] == "failed"]
    if failed:
        raise RuntimeError(failed[0]["error"]["message"])
    steps = {p["step"]: p["value"] / 1000 for m in messages if m["type"] == "metrics" for p in m["points"] if p["name"] == "step_time_ms"}
    started = next(m for m in messages if m["type"] == "started")
    return {"step_s": statistics.median([steps[s] for s in range(args.warmup + 1, total + 1)]), "trainable": started["trainableParams"]}


def bookkeeping_ms(plan: dict[str, Any], steps: int = 200) -> float:
    """What the engine does per step besides the model's compute: collate the step's rows, validate and
    write its progress and metrics messages. A figure that load on a shared machine barely moves."""
    import io

    from workbench_torch.plan import collate
    from workbench_torch.protocol import Emitter

    emitter = Emitter(io.StringIO())
    names = ["train/loss", "lr/lora_A", "lr/lora_B", "grad_norm", "tokens_per_s", "step_time_ms", "memory_mb"]
    began = time.perf_counter()
    for step in range(steps):
        collate(plan, plan["steps"][step % len(plan["steps"])]["rows"])
        emitter.emit({"type": "progress", "progress": {"step": step + 1, "maxSteps": steps, "tokensPerSecond": 1.0, "stepTimeMs": 1.0, "etaSeconds": 1.0}})
        emitter.emit({"type": "metrics", "points": [{"step": step + 1, "name": n, "value": 1.0, "time": 0} for n in names]})
    return 1000 * (time.perf_counter() - began) / steps


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = measure_plain(args) if args.which == "plain" else measure_engine(args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device == "cuda":
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu_name"] = torch.cuda.get_device_name()
    result["torch"] = torch.__version__
    print(json.dumps(result))


def run_child(args: argparse.Namespace, which: str, model: Path, model_name: str, plan: Path, targets: list[str]) -> dict[str, Any]:
    preset = PRESETS[args.preset]
    argv = [sys.executable, __file__, "--child", which, "--model", str(model), "--model-name", model_name, "--plan", str(plan), "--device", args.device,
            "--dtype", preset["dtype"], "--batch", str(preset["batch"]), "--seq", str(preset["seq"]), "--r", str(preset["r"]),
            "--warmup", str(preset["warmup"]), "--steps", str(preset["steps"]), "--threads", str(args.threads), "--targets", *targets]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT / "engine-torch")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{which} on {model_name} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="append the section to bench/RESULTS.md")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU, when its name is not in the table")
    parser.add_argument("--child", choices=["plain", "engine"])
    parser.add_argument("--bookkeeping-only", action="store_true", help="only the engine's per-step work outside the model (collation, messages), in ms")
    for name in ("--model", "--model-name", "--plan", "--dtype", "--device"):
        parser.add_argument(name)
    for name in ("--batch", "--seq", "--r", "--warmup", "--steps"):
        parser.add_argument(name, type=int)
    parser.add_argument("--targets", nargs="+")
    args = parser.parse_args()
    if args.child:
        args.which = args.child
        child(args)
        return
    import torch

    preset = PRESETS[args.preset]
    if args.bookkeeping_only:
        plan = make_plan(preset["batch"], preset["seq"], 8, SHAPES[preset["models"][0]]["config"]["vocab_size"])
        print(json.dumps({"preset": args.preset, "batch": preset["batch"], "seq": preset["seq"], "bookkeeping_ms_per_step": round(bookkeeping_ms(plan), 3)}))
        return
    args.device = "cuda" if args.preset == "cuda" else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("The cuda preset needs an NVIDIA GPU with a CUDA build of torch; this machine has none.")
    rows = []
    plan_files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as work:
        for name in preset["models"]:
            folder = Path(work) / name
            make_model(name, folder, preset["dtype"])
            plan = Path(work) / f"{name}-plan.json"
            vocab = SHAPES[name]["config"]["vocab_size"]
            plan.write_text(json.dumps(make_plan(preset["batch"], preset["seq"], preset["warmup"] + preset["steps"], vocab)))
            targets = SHAPES[name]["targets"][args.device]
            results: dict[str, list[dict[str, Any]]] = {"plain": [], "engine": []}
            for _ in range(preset["rounds"]):
                for which in ("plain", "engine"):
                    results[which].append(run_child(args, which, folder, name, plan, targets))
                    print(f"{name} {which}: {results[which][-1]}", file=sys.stderr)
            rows.append((name, targets, results))
            plan_files[name] = plan
        write_section(args, preset, rows, plan_files)


def write_section(args: argparse.Namespace, preset: dict[str, Any], rows: list[Any], plan_files: dict[str, Path]) -> None:
    tokens = preset["batch"] * preset["seq"]
    lines = []
    for name, targets, results in rows:
        best = {w: min(results[w], key=lambda r: r["step_s"]) for w in results}
        peak = {w: max(r["peak_rss_mb"] for r in results[w]) for w in results}
        for which, label in (("plain", "transformers + PEFT (plain loop)"), ("engine", "pytorch engine")):
            r = best[which]
            tps = tokens / r["step_s"]
            cells = [name, label, f"{tps:.0f}", f"{1000 * r['step_s']:.0f}", f"{peak[which]:.0f}"]
            if args.device == "cuda":
                gpu = r.get("gpu_name", "")
                peak_tflops = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None)
                flops = best["plain"]["flops_per_token"] * tps
                cells += [f"{max(x['gpu_peak_mb'] for x in results[which]):.0f}", f"{100 * flops / (peak_tflops * 1e12):.1f}%" if peak_tflops else "n/a"]
            cells.append(f"{best['plain']['step_s'] / r['step_s']:.3f}" if which == "engine" else "1.000")
            lines.append(cells)
        overhead_tps = best["engine"]["step_s"] / best["plain"]["step_s"] - 1
        overhead_mem = peak["engine"] / peak["plain"] - 1
        lines.append([name, f"engine overhead: {100 * overhead_tps:+.1f}% step time, {100 * overhead_mem:+.1f}% peak RSS; bookkeeping {bookkeeping_ms(json.loads(Path(plan_files[name]).read_text())):.2f} ms/step", "", "", "", *([""] * (2 if args.device == "cuda" else 0)), ""])
    header = ["model", "implementation", "tokens/s", "step (ms)", "peak RSS (MiB)", *(["GPU peak (MiB)", "MFU"] if args.device == "cuda" else []), "tokens/s ÷ plain"]
    gpu = rows[0][2]["plain"][0].get("gpu_name") if args.device == "cuda" else None
    first = rows[0][2]["plain"][0]
    lora_targets = "; ".join(f"{n}: {', '.join(t)}" for n, t, _ in rows)
    text = "\n".join([
        "",
        f"## PyTorch engine vs plain transformers + PEFT ({args.preset}), {datetime.now(timezone.utc).date()}",
        "",
        f"Machine: {gpu or f'{os.cpu_count()} CPU cores'}, torch {first['torch']}, {args.threads} threads. Batch {preset['batch']} × {preset['seq']} tokens, {preset['dtype']}, LoRA r {preset['r']} "
        f"({lora_targets}), dropout 0.05, AdamW + clipping. Each figure is the best of {preset['rounds']} processes per implementation, "
        f"each the median of {preset['steps']} steps after {preset['warmup']} warm-up steps; the two implementations alternate (bench/pytorch_engine.py --preset {args.preset}).",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |",
        *("| " + " | ".join(c) + " |" for c in lines),
        "",
    ])
    print(text)
    if args.write:
        with (ROOT / "bench" / "RESULTS.md").open("a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
