"""transformers + PEFT reference for bench/real-sizes.ts: LoRA training steps on a model of a real
shape with random weights, on torch CPU. Prints one JSON line:
  {"tokens_per_s", "step_ms", "peak_rss_mb", "torch_version", "transformers_version", "peft_version", ...}

  /work/main/.venv/bin/python bench/peft_lora_step.py --family gpt2 --batch 8 --seq 256 --steps 10

Shapes: gpt2 (GPT-2 124M), smollm2 (SmolLM2-135M), qwen2 (Qwen2.5-0.5B). LoRA r 8, alpha 16, dropout
0.05 on c_attn and c_proj (GPT-2, as the workbench's default) or q_proj and v_proj (Llama family,
PEFT's default); AdamW at 2e-3 over the adapter; the loss is the causal LM cross-entropy over every token.
"""
import argparse
import json
import os
import resource
import statistics
import time

SHAPES = {
    "gpt2": dict(model_type="gpt2", n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024),
    "smollm2": dict(model_type="llama", hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=2048),
    "qwen2": dict(model_type="qwen2", hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=32768),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=sorted(SHAPES), default="gpt2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import torch
    import transformers
    import peft
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = dict(SHAPES[args.family])
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    targets = ["c_attn", "c_proj"] if args.family == "gpt2" else ["q_proj", "v_proj"]
    lora = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets, fan_in_fan_out=args.family == "gpt2",
                           task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora)
    model.train()
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=2e-3, weight_decay=0.0)
    batches = [torch.randint(0, config.vocab_size, (args.batch, args.seq)) for _ in range(2)]

    def step(i):
        ids = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    print(json.dumps({
        "family": args.family,
        "tokens_per_s": round(args.batch * args.seq / step_s, 1),
        "step_ms": round(step_s * 1000, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "threads": torch.get_num_threads(),
        "base_params": sum(q.numel() for q in model.parameters()) - sum(q.numel() for q in trainable),
        "trainable_params": sum(q.numel() for q in trainable),
        "batch": args.batch, "seq": args.seq, "steps": args.steps,
    }))


if __name__ == "__main__":
    main()
