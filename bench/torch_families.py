"""PyTorch reference rows of `npm run bench`: forward and LoRA train-step throughput per model family.

Reads the shapes in bench/families.json (the same file bench/families.ts reads) and times, in float32 on
the CPU, with the same median-after-warm-up rule:
  forward  logits of a batch, no autograd (the one number read back forces the work, as on the Node side);
  train    forward + next-token cross-entropy + backward to the LoRA parameters only + AdamW, LoRA as PEFT
           adds it (A kaiming-uniform, B zero, scale alpha / r, dropout on the adapter input).
Families: GPT-2 (scripts/default-model/gpt2.py, the model the default checkpoint was trained with), Llama and
Qwen2 as modeling_llama.py / modeling_qwen2.py compute them (RMSNorm, rotate_half RoPE, repeat_kv GQA, SwiGLU;
Qwen2 with q/k/v biases and a tied head; the RoPE and GQA helpers come from scripts/make-fixtures-llama.py),
and BERT's masked-LM forward as BertForMaskedLM computes it. The fixture scripts' own forwards run in float64
for parity; these modules are the float32 equivalent, so the ratio compares like with like.
Prints one JSON line per row.

  /usr/bin/python3 bench/torch_families.py --threads 2
"""
import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..'))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--threads', type=int, default=1, help='PyTorch intra-op threads (and OpenBLAS threads)')
p.add_argument('--budget-s', type=float, default=3.0, help='each row times steps until it has --min-steps and this many seconds')
p.add_argument('--min-steps', type=int, default=5)
p.add_argument('--max-steps', type=int, default=30)
p.add_argument('--warmup', type=int, default=2)
ARGS = p.parse_args()
# As bench/torch_lora_step.py: OpenBLAS reads its thread count at load time, and passive OpenMP waiting keeps a
# shared two-core machine from spinning on descheduled threads.
os.environ['OPENBLAS_NUM_THREADS'] = str(ARGS.threads)
os.environ['OMP_NUM_THREADS'] = str(ARGS.threads)
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, 'scripts', 'default-model'))
import gpt2  # noqa: E402

_spec = importlib.util.spec_from_file_location('llama_fixtures', os.path.join(ROOT, 'scripts', 'make-fixtures-llama.py'))
llama_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(llama_fixtures)


class LoraLinear(nn.Module):
    """PEFT's LoRA on an nn.Linear: y = base(x) + (alpha / r) * dropout(x) A^T B^T."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling


class LlamaLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, nh = cfg['hidden_size'], cfg['num_attention_heads']
        self.nh, self.nkv, self.hd = nh, cfg.get('num_key_value_heads', nh), cfg.get('head_dim', C // nh)
        bias = cfg['model_type'] == 'qwen2'
        self.q_proj = nn.Linear(C, nh * self.hd, bias=bias)
        self.k_proj = nn.Linear(C, self.nkv * self.hd, bias=bias)
        self.v_proj = nn.Linear(C, self.nkv * self.hd, bias=bias)
        self.o_proj = nn.Linear(nh * self.hd, C, bias=False)
        self.gate_proj = nn.Linear(C, cfg['intermediate_size'], bias=False)
        self.up_proj = nn.Linear(C, cfg['intermediate_size'], bias=False)
        self.down_proj = nn.Linear(cfg['intermediate_size'], C, bias=False)
        self.input_layernorm = nn.Parameter(torch.ones(C))
        self.post_attention_layernorm = nn.Parameter(torch.ones(C))
        self.eps = cfg['rms_norm_eps']

    def forward(self, x, cos, sin, causal):
        B, T, _ = x.shape
        h = llama_fixtures.rms_norm(x, self.input_layernorm, self.eps)
        q = self.q_proj(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        rot = llama_fixtures.rotate_half
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = llama_fixtures.repeat_kv(k, self.nh // self.nkv), llama_fixtures.repeat_kv(v, self.nh // self.nkv)
        att = ((q @ k.transpose(2, 3)) / math.sqrt(self.hd)).masked_fill(~causal, torch.finfo(q.dtype).min).softmax(dim=-1)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(B, T, self.nh * self.hd))
        h = llama_fixtures.rms_norm(x, self.post_attention_layernorm, self.eps)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], cfg['hidden_size'])
        self.layers = nn.ModuleList(LlamaLayer(cfg) for _ in range(cfg['num_hidden_layers']))
        self.norm = nn.Parameter(torch.ones(cfg['hidden_size']))
        self.lm_head = None if cfg.get('tie_word_embeddings') else nn.Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False)
        for name, w in self.named_parameters():
            if w.dim() == 2:
                nn.init.normal_(w, std=0.02)
        hd = self.layers[0].hd
        # RoPE tables computed once in float64 (as the fixtures do), then used in float32.
        T = cfg['max_position_embeddings']
        freqs = torch.arange(T, dtype=torch.float64)[:, None] * llama_fixtures.inv_frequencies(cfg, hd)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer('cos', emb.cos().float(), persistent=False)
        self.register_buffer('sin', emb.sin().float(), persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos[:T], self.sin[:T], causal)
        x = llama_fixtures.rms_norm(x, self.norm, self.cfg['rms_norm_eps'])
        return x @ self.embed_tokens.weight.T if self.lm_head is None else self.lm_head(x)

    def attach_lora(self, targets, r, alpha, dropout):
        for w in self.parameters():
            w.requires_grad_(False)
        for layer in self.layers:
            for name in targets:
                setattr(layer, name, LoraLinear(getattr(layer, name), r, alpha, dropout))
        return [w for w in self.parameters() if w.requires_grad]


class BertForMaskedLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, I = cfg['hidden_size'], cfg['intermediate_size']
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg['vocab_size'], C)
        self.position_embeddings = nn.Embedding(cfg['max_position_embeddings'], C)
        self.token_type_embeddings = nn.Embedding(cfg['type_vocab_size'], C)
        self.embeddings_ln = nn.LayerNorm(C, eps=cfg['layer_norm_eps'])
        self.layers = nn.ModuleList(
            nn.ModuleDict({'query': nn.Linear(C, C), 'key': nn.Linear(C, C), 'value': nn.Linear(C, C), 'attention_output': nn.Linear(C, C),
                           'attention_ln': nn.LayerNorm(C, eps=cfg['layer_norm_eps']), 'intermediate': nn.Linear(C, I),
                           'output': nn.Linear(I, C), 'output_ln': nn.LayerNorm(C, eps=cfg['layer_norm_eps'])})
            for _ in range(cfg['num_hidden_layers']))
        self.transform = nn.Linear(C, C)
        self.transform_ln = nn.LayerNorm(C, eps=cfg['layer_norm_eps'])
        self.decoder_bias = nn.Parameter(torch.zeros(cfg['vocab_size']))
        for w in self.parameters():
            if w.dim() == 2:
                nn.init.normal_(w, std=0.02)

    def forward(self, ids, attention_mask):
        B, T = ids.shape
        C, nh = self.cfg['hidden_size'], self.cfg['num_attention_heads']
        hd = C // nh
        x = self.word_embeddings(ids) + self.position_embeddings.weight[:T] + self.token_type_embeddings.weight[0]
        x = self.embeddings_ln(x)
        extended = (1.0 - attention_mask)[:, None, None, :] * torch.finfo(x.dtype).min
        for l in self.layers:
            q, k, v = (l[n](x).view(B, T, nh, hd).transpose(1, 2) for n in ('query', 'key', 'value'))
            att = ((q @ k.transpose(2, 3)) / math.sqrt(hd) + extended).softmax(dim=-1)
            x = l['attention_ln'](l['attention_output']((att @ v).transpose(1, 2).reshape(B, T, C)) + x)
            x = l['output_ln'](l['output'](F.gelu(l['intermediate'](x))) + x)
        t = self.transform_ln(F.gelu(self.transform(x)))
        return t @ self.word_embeddings.weight.T + self.decoder_bias


def timed(step):
    for _ in range(ARGS.warmup):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < ARGS.max_steps and (len(times) < ARGS.min_steps or time.perf_counter() - start < ARGS.budget_s):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def report(family, mode, seconds_steps, params, tokens):
    seconds, steps = seconds_steps
    print(json.dumps({'family': family, 'mode': mode, 'step_ms': round(seconds * 1000, 2), 'steps': steps,
                      'tokens_per_s': round(tokens / seconds, 1), 'params': params, 'torch_version': torch.__version__,
                      'threads': torch.get_num_threads()}), flush=True)


def main():
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    with open(os.path.join(HERE, 'families.json')) as f:
        spec = json.load(f)
    B, T, lora = spec['batch'], spec['seq'], spec['lora']
    for family, entry in spec['families'].items():
        cfg = dict(entry['config'])
        ids = torch.randint(0, cfg['vocab_size'], (B, T))
        if cfg['model_type'] == 'bert':
            model = BertForMaskedLM(cfg).eval()
            mask = torch.ones(B, T)
            params = sum(w.numel() for w in model.parameters())
            with torch.no_grad():
                report(family, 'forward', timed(lambda: model(ids, mask).sum().item()), params, B * T)
            continue
        if cfg['model_type'] == 'gpt2':
            model = gpt2.GPT2LMHeadModel({**cfg, 'layer_norm_epsilon': cfg.get('layer_norm_epsilon', 1e-5)})
        else:
            model = LlamaForCausalLM(cfg)
        params = sum(w.numel() for w in model.parameters())
        model.eval()
        with torch.no_grad():
            report(family, 'forward', timed(lambda: model(ids).sum().item()), params, B * T)
        if cfg['model_type'] == 'gpt2':
            trainable = gpt2.attach_lora(model, lora['r'], lora['alpha'], lora['dropout'])
        else:
            trainable = model.attach_lora(entry['loraTargets'], lora['r'], lora['alpha'], lora['dropout'])
        model.train()
        opt = torch.optim.AdamW(trainable, lr=lora['lr'], weight_decay=0.0)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, cfg['vocab_size']), ids[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            return loss.item()

        report(family, 'train', timed(step), params, B * T)


if __name__ == '__main__':
    main()
