"""GPT-2 (Radford et al. 2019) in plain PyTorch, with the parameter names of HF GPT2LMHeadModel.

Conv1D layout as in HF: c_attn.weight is [n_embd, 3 n_embd] and y = x W + b. Pre-LN blocks,
gelu_new (tanh approximation), learned positions, lm_head tied to wte and therefore not saved.
Also PEFT-style LoRA for Conv1D, and safetensors written by hand (8-byte little-endian header length, JSON header, raw data).
"""
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg["n_head"]
        self.c_attn = Conv1D(cfg["n_embd"], 3 * cfg["n_embd"])
        self.c_proj = Conv1D(cfg["n_embd"], cfg["n_embd"])
        n = cfg["n_positions"]
        self.register_buffer("causal", torch.ones(n, n, dtype=torch.bool).tril().view(1, 1, n, n), persistent=False)

    def forward(self, x):
        b, t, e = x.shape
        q, k, v = self.c_attn(x).split(e, dim=2)
        q, k, v = (z.view(b, t, self.n_head, e // self.n_head).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(e // self.n_head)
        att = att.masked_fill(~self.causal[:, :, :t, :t], torch.finfo(att.dtype).min).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(b, t, e))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg["n_embd"], 4 * cfg["n_embd"])
        self.c_proj = Conv1D(4 * cfg["n_embd"], cfg["n_embd"])

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg["layer_norm_epsilon"]
        self.ln_1 = nn.LayerNorm(cfg["n_embd"], eps=eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg["n_embd"], eps=eps)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
        self.wpe = nn.Embedding(cfg["n_positions"], cfg["n_embd"])
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=cfg["layer_norm_epsilon"])


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg)
        self.init_weights()

    def init_weights(self):
        """GPT-2's init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layer)."""
        for name, p in self.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                nn.init.ones_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            elif name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * self.cfg["n_layer"]))
            elif name == "transformer.wpe.weight":
                nn.init.normal_(p, std=0.01)
            else:
                nn.init.normal_(p, std=0.02)

    def hidden_states(self, idx):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in t.h:
            x = block(x)
        return t.ln_f(x)

    def forward(self, idx):
        return self.hidden_states(idx) @ self.transformer.wte.weight.T


class LoraConv1D(nn.Module):
    """y = x W0 + b0 + (alpha / r) * dropout(x) A^T B^T, with W0 and b0 frozen (PEFT's LoRA on a Conv1D)."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base = base
        n_in, n_out = base.weight.shape
        self.lora_A = nn.Parameter(torch.empty(r, n_in))
        self.lora_B = nn.Parameter(torch.zeros(n_out, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling


def attach_lora(model, r, alpha, dropout):
    """Freezes the model and adapts every c_attn and c_proj: PEFT matches target_modules ["c_attn", "c_proj"]
    by module name, so the MLP's c_proj is adapted along with attention's. Returns the adapter parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.transformer.h:
        block.attn.c_attn = LoraConv1D(block.attn.c_attn, r, alpha, dropout)
        block.attn.c_proj = LoraConv1D(block.attn.c_proj, r, alpha, dropout)
        block.mlp.c_proj = LoraConv1D(block.mlp.c_proj, r, alpha, dropout)
    return [p for p in model.parameters() if p.requires_grad]


def tied_cross_entropy(model, idx, targets, chunk=512, mask=None):
    """Mean next-token loss, computed and back-propagated chunk by chunk over the vocabulary projection.

    Full [tokens, vocab] logits are tens of MB; allocating them fresh every step costs more than the
    whole transformer on one CPU core (page faults), while 512-row chunks stay in the allocator's cache.
    Calls backward itself and returns the loss as a float.
    """
    h = model.hidden_states(idx).reshape(-1, model.cfg["n_embd"])
    h_leaf = h.detach().requires_grad_()
    y = targets.reshape(-1)
    weights = torch.ones_like(y, dtype=h.dtype) if mask is None else mask.reshape(-1).to(h.dtype)
    n = weights.sum().clamp(min=1)
    total = 0.0
    wte = model.transformer.wte.weight
    for s in range(0, y.numel(), chunk):
        logits = h_leaf[s:s + chunk] @ wte.T
        loss = (F.cross_entropy(logits, y[s:s + chunk], reduction="none") * weights[s:s + chunk]).sum() / n
        loss.backward()
        total += loss.item()
    h.backward(h_leaf.grad)
    return total


def state_dict_for_export(model):
    """HF GPT2LMHeadModel key names; lm_head.weight is omitted because it is tied to wte."""
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name]
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = metadata or {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the format pads the header with spaces to an 8-byte boundary
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
    return out
